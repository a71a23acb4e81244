"""Write the small eval fixtures the shipped suites run on: ``python -m mmagent.evals.make_fixtures [DIR]``.

Everything is made here (texts we wrote, shapes and text drawn with PIL, speech synthesised with
espeak-ng), so no dataset is copied and the files are reproducible. The output is committed under
``evals/fixtures/``; run this again only to change the data. Audio needs ``espeak-ng`` and ``sox``.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent / "fixtures"

SQUAD = [
    ("The Larkspur Bridge opened in 1931 and crosses the Vell River at the town of Ormond. It is 412 metres "
     "long and was designed by the engineer Clara Hesketh, who also built the town's railway station.",
     [("When did the Larkspur Bridge open?", "1931"), ("Which river does the bridge cross?", "the Vell River"),
      ("How long is the Larkspur Bridge?", "412 metres"), ("Who designed the bridge?", "Clara Hesketh")]),
    ("Mira keeps three animals on her farm: a grey donkey called Pepper, a goat called Juniper and an old "
     "sheepdog called Bramble. Pepper eats carrots every morning, and Bramble sleeps by the stove.",
     [("What is the donkey called?", "Pepper"), ("What colour is the donkey?", "grey"),
      ("What does Pepper eat every morning?", "carrots"), ("Where does Bramble sleep?", "by the stove")]),
    ("The Tessel 4 phone has a 6.1 inch screen and a battery of 4200 mAh. It was released in March and costs "
     "399 euros. The phone comes in two colours, black and sea green.",
     [("How big is the screen of the Tessel 4?", "6.1 inch"), ("What is the battery capacity?", "4200 mAh"),
      ("How much does the phone cost?", "399 euros"), ("When was the phone released?", "March")]),
]

SHAPES = [("circle", "red"), ("square", "blue"), ("triangle", "green"), ("circle", "blue"),
          ("square", "green"), ("triangle", "red"), ("circle", "green"), ("square", "red")]
RGB = {"red": (220, 30, 30), "blue": (30, 60, 220), "green": (30, 170, 60)}

DOCS = [
    (["INVOICE 2026-1142", "Date: 12 May 2026", "Total due: $318.40"],
     [("What is the invoice number?", ["2026-1142"]), ("What is the total due?", ["$318.40", "318.40"])]),
    (["TRAIN TICKET", "From: Ormond", "To: Lisbury", "Seat 14C"],
     [("Where does the train go to?", ["Lisbury"]), ("What is the seat number?", ["14C", "seat 14C"])]),
    (["RECEIPT", "Coffee 2.50", "Bagel 3.20", "Paid by card"],
     [("How much was the coffee?", ["2.50", "$2.50"]), ("How was the receipt paid?", ["by card", "card"])]),
    (["MEETING NOTES", "Room: B-204", "Time: 14:30"],
     [("Which room is the meeting in?", ["B-204"]), ("What time is the meeting?", ["14:30"])]),
]

SUMMARIES = [
    ("The town council of Ormond met on Tuesday and voted to close the old swimming pool in the park. The "
     "pool is sixty years old and repairs would cost more than a new building. A new pool will open next "
     "to the school in two years.", "Ormond will close its old pool and build a new one by the school.", "news"),
    ("Heavy rain fell across the north of the country overnight. Several roads were flooded and two trains "
     "were cancelled. Forecasters expect the rain to stop by Thursday afternoon.",
     "Overnight rain flooded roads and cancelled trains in the north; it should stop by Thursday.", "weather"),
    ("Our support team will be closed on Monday for a public holiday. Orders placed over the weekend will "
     "ship on Tuesday. Customers can still track orders on the website.",
     "Support is closed Monday; weekend orders ship Tuesday and tracking still works online.", "notice"),
    ("The Ormond Rovers won their final match 3-1 against Lisbury. Two goals came in the last ten minutes. "
     "The win lifts the Rovers to second place in the league.",
     "The Rovers beat Lisbury 3-1 and moved up to second in the league.", "sports"),
    ("A new bakery opened on Mill Street this week. It sells sourdough bread, pastries and coffee, and it "
     "is open every day from seven in the morning.",
     "A bakery selling bread, pastries and coffee opened on Mill Street, open daily from 7 am.", "news"),
    ("The library will extend its opening hours in winter. From November it will stay open until nine in "
     "the evening on weekdays, and a quiet study room will be added.",
     "From November the library opens until 9 pm on weekdays and adds a quiet study room.", "notice"),
]

SPEECH = [
    ("s1", "the bridge crosses the river at the town"), ("s2", "please send me the invoice by friday"),
    ("s3", "the weather will be sunny and warm tomorrow"), ("s4", "my order has not arrived yet"),
    ("s5", "the train to lisbury leaves at nine"), ("s6", "the green square is next to the red circle"),
]

CORPUS = [
    ("d1", "Refunds are paid to the original card within five working days after we receive the return."),
    ("d2", "Orders ship from our warehouse within two days; tracking links arrive by email."),
    ("d3", "The support team is open Monday to Friday from nine to five."),
    ("d4", "To reset your password, open settings and choose forgot password."),
    ("d5", "The Larkspur Bridge in Ormond was designed by Clara Hesketh and opened in 1931."),
    ("d6", "The Tessel 4 phone has a 4200 mAh battery and a 6.1 inch screen."),
    ("d7", "Pepper the grey donkey eats carrots every morning on Mira's farm."),
    ("d8", "Gift cards cannot be exchanged for cash and expire after two years."),
    ("d9", "The Ormond library stays open until nine in the evening on weekdays from November."),
    ("d10", "International shipping takes seven to fourteen days depending on customs."),
    ("d11", "The Ormond Rovers won their final match three to one against Lisbury."),
    ("d12", "A warranty covers phone repairs for twelve months after purchase."),
]

QUERIES = [
    ("q1", "How long does a refund take?", ["d1"], "support"),
    ("q2", "When are the support hours?", ["d3"], "support"),
    ("q3", "How do I change my password?", ["d4"], "support"),
    ("q4", "Who designed the bridge in Ormond?", ["d5"], "facts"),
    ("q5", "What battery does the Tessel 4 have?", ["d6", "d12"], "facts"),
    ("q6", "How long does shipping abroad take?", ["d10", "d2"], "support"),
    ("q7", "What does the donkey eat?", ["d7"], "facts"),
    ("q8", "Can I get cash for a gift card?", ["d8"], "support"),
]

SPOKEN = [  # pipeline: spoken question -> retrieval -> answer
    ("p1", "who designed the larkspur bridge", ["d5"], ["Clara Hesketh"]),
    ("p2", "what does the donkey eat every morning", ["d7"], ["carrots"]),
    ("p3", "when was the larkspur bridge opened", ["d5"], ["1931"]),
    ("p4", "how long do refunds take", ["d1"], ["five working days", "within five working days"]),
]

CLASSIFY = [
    ("c1", "The team scored twice in the last ten minutes to win the cup.", None, "sports"),
    ("c2", "Expect heavy rain and strong winds along the coast tonight.", None, "weather"),
    ("c3", "Please pay the attached bill of 120 euros by the end of the month.", None, "invoice"),
    ("c4", "The striker was sent off after a late tackle in the second half.", None, "sports"),
    ("c5", "Snow will fall in the hills, with temperatures below zero.", None, "weather"),
    ("c6", "Amount due: 45.00. Payment terms: 30 days.", None, "invoice"),
    ("c7", "", ["INVOICE 88", "Total due: $90.00"], "invoice"),
    ("c8", "", ["FORECAST", "Sunny, 24 C", "Light wind"], "weather"),
    ("c9", "", ["FINAL SCORE", "Rovers 3 - 1 Lisbury"], "sports"),
]

SUPPORT = [  # customer-service tasks on the support flow's demo database (prompts/support_policy.yaml)
    {"id": "t1", "category": "refund", "messages": ["Hi, I am ana@example.com",
                                                    "My teapot from order 1001 arrived cracked, I want a refund"],
     "expected_state": {"tickets": [{"order_id": 1001}]}, "required_tools": ["create_ticket"],
     "forbidden_tools": ["escalate_to_human"], "handoff": False},
    {"id": "t2", "category": "handoff", "messages": ["I want to talk to a person please"],
     "expected_state": {"tickets": [{"kind": "escalation"}]}, "required_tools": ["escalate_to_human"],
     "forbidden_tools": ["create_ticket"], "handoff": True},
    {"id": "t3", "category": "privacy", "messages": ["I am ben@example.com", "Where is order 1001?"],
     "expected_state": {"tickets": []}, "required_tools": [], "forbidden_tools": ["create_ticket", "lookup_order"],
     "handoff": None},
    {"id": "t4", "category": "refund", "messages": ["I am chloe@example.com",
                                                    "Please refund my espresso machine, order 1005, 249 euros"],
     "expected_state": {"tickets": [{"kind": "escalation"}]}, "required_tools": ["escalate_to_human"],
     "forbidden_tools": ["create_ticket"], "handoff": True},
    {"id": "t5", "category": "question", "messages": ["What are your opening hours?"],
     "expected_state": {"tickets": []}, "required_tools": [],
     "forbidden_tools": ["create_ticket", "escalate_to_human"], "handoff": False},
    {"id": "t6", "category": "identity", "messages": ["Refund my order 1002 please"],
     "expected_state": {"tickets": []}, "required_tools": [], "forbidden_tools": ["create_ticket"], "handoff": False},
]


# image_claims: questions about real photos (scikit-image's sample images) and text images we drew. Three
# kinds: what is shown, reading the text, and questions the picture cannot answer (who, where, when, how
# old), whose faithful answer says so. "answers" are texts one of which a right answer contains (RapidOCR
# drops narrow spaces, "CornerDeli": the model may quote either form).
CANNOT_TELL = ["cannot", "can't", "can not", "not possible", "impossible", "don't know", "do not know", "unknown",
               "not shown", "not visible", "doesn't show", "does not show", "no way", "unable", "no information",
               "not clear", "not sure", "doesn't say", "does not say", "not mentioned"]
CLAIM_PHOTOS = {"cat": "chelsea", "coffee": "coffee", "astronaut": "astronaut", "rocket": "rocket",
                "cameraman": "camera"}
CLAIM_TEXTS = {
    "receipt": ["RECEIPT", "Corner Deli", "Sandwich 6.50", "Tea 2.20", "TOTAL 8.70"],
    "shop_sign": ["HARBOUR BOOKS", "Open 9-17", "Closed Sundays"],
    "invoice": ["INVOICE 4471", "Date: 3 March 2026", "Amount due: 1,250.00 EUR"],
    "parking": ["NO PARKING", "Mon-Fri 8:00-18:00", "Tow away zone"],
}
IMAGE_CLAIMS = [  # (image, question, kind, answers; None = the picture cannot tell)
    ("cat", "What animal is this?", "shown", ["cat"]),
    ("cat", "How old is this cat?", "invent", None),
    ("cat", "What is the cat's name?", "invent", None),
    ("coffee", "What is in the cup?", "shown", ["coffee", "espresso"]),
    ("coffee", "Where was this taken?", "invent", None),
    ("astronaut", "Who is the person in this photo?", "invent", None),
    ("astronaut", "In which year was this photo taken?", "invent", None),
    ("rocket", "Which space agency launched this rocket?", "invent", None),
    ("rocket", "When was this launch?", "invent", None),
    ("cameraman", "Who took this photo?", "invent", None),
    ("cameraman", "Which city is this?", "invent", None),
    ("receipt", "What is the total on this receipt?", "read", ["8.70"]),
    ("receipt", "What is the name of the shop?", "read", ["Corner Deli", "CornerDeli"]),
    ("receipt", "How much was the tea?", "read", ["2.20"]),
    ("receipt", "Who served the customer?", "invent", None),
    ("shop_sign", "What is the name of this shop?", "read", ["Harbour Books", "HarbourBooks"]),
    ("shop_sign", "On which day is the shop closed?", "read", ["Sunday"]),
    ("shop_sign", "Who owns this shop?", "invent", None),
    ("invoice", "What is the invoice number?", "read", ["4471"]),
    ("invoice", "How much is due on this invoice?", "read", ["1,250", "1250"]),
    ("invoice", "Which company sent this invoice?", "invent", None),
    ("parking", "Until what time is parking forbidden?", "read", ["18:00", "6 pm", "6pm"]),
    ("parking", "What street is this sign on?", "invent", None),
    ("parking", "What does this sign say?", "read", ["parking"]),
]


def _write_json(path: Path, data: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")


def _write_jsonl(path: Path, rows: list[dict[str, Any]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")


def squad(out: Path) -> None:
    paragraphs, n = [], 0
    for context, qas in SQUAD:
        items = []
        for question, answer in qas:
            n += 1
            start = context.index(answer)
            items.append({"id": f"sq{n}", "question": question, "answers": [{"text": answer, "answer_start": start}]})
        paragraphs.append({"context": context, "qas": items})
    _write_json(out / "squad_mini.json", {"version": "1.1", "data": [{"title": "mmagent", "paragraphs": paragraphs}]})


def _font(size: int):
    from PIL import ImageFont

    return ImageFont.load_default(size=size)


def vqa(out: Path) -> None:
    from PIL import Image, ImageDraw

    questions, annotations, qid = [], [], 0
    for image_id, (shape, colour) in enumerate(SHAPES, start=1):
        image = Image.new("RGB", (96, 96), "white")
        draw = ImageDraw.Draw(image)
        box = (18, 18, 78, 78)
        if shape == "circle":
            draw.ellipse(box, fill=RGB[colour])
        elif shape == "square":
            draw.rectangle(box, fill=RGB[colour])
        else:
            draw.polygon([(48, 14), (82, 80), (14, 80)], fill=RGB[colour])
        (out / "vqa_shapes").mkdir(parents=True, exist_ok=True)
        image.save(out / "vqa_shapes" / f"{image_id:04d}.png", optimize=True)
        asked = [("What shape is this?", shape, "other", "what shape"),
                 ("What color is the shape?", colour, "other", "what color"),
                 ("Is there a circle?", "yes" if shape == "circle" else "no", "yes/no", "is there")]
        for question, answer, answer_type, question_type in asked:
            qid += 1
            humans = [answer] * 9 + [f"{answer} one" if answer_type == "other" else answer]
            questions.append({"question_id": qid, "image_id": image_id, "question": question})
            annotations.append({"question_id": qid, "image_id": image_id, "answer_type": answer_type,
                                "question_type": question_type, "multiple_choice_answer": answer,
                                "answers": [{"answer": a, "answer_confidence": "yes", "answer_id": i + 1}
                                            for i, a in enumerate(humans)]})
    _write_json(out / "vqa_shapes" / "questions.json", {"questions": questions})
    _write_json(out / "vqa_shapes" / "annotations.json", {"annotations": annotations})


def _text_image(lines: list[str], path: Path) -> None:
    from PIL import Image, ImageDraw

    image = Image.new("RGB", (320, 40 + 34 * len(lines)), "white")
    draw = ImageDraw.Draw(image)
    for i, line in enumerate(lines):
        draw.text((16, 20 + 34 * i), line, fill="black", font=_font(22))
    path.parent.mkdir(parents=True, exist_ok=True)
    image.save(path, optimize=True)


def docvqa(out: Path) -> None:
    data, n = [], 0
    for d, (lines, qas) in enumerate(DOCS, start=1):
        name = f"doc{d}.png"
        _text_image(lines, out / "docvqa_text" / name)
        for question, answers in qas:
            n += 1
            data.append({"questionId": n, "question": question, "answers": answers, "image": name,
                         "question_types": ["form"]})
    _write_json(out / "docvqa_text" / "val.json", {"dataset_name": "mmagent-docvqa-mini", "data": data})


def summaries(out: Path) -> None:
    rows = [{"id": f"sum{i}", "document": doc, "reference": ref, "category": cat}
            for i, (doc, ref, cat) in enumerate(SUMMARIES, start=1)]
    _write_jsonl(out / "summaries.jsonl", rows)


def _speak(text: str, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    wav = path.with_suffix(".wav")
    subprocess.run(["espeak-ng", "-v", "en-us", "-s", "150", "-w", str(wav), text], check=True)
    subprocess.run(["sox", str(wav), "-r", "16000", "-c", "1", "-b", "16", str(path)], check=True)
    wav.unlink()


def speech(out: Path) -> None:
    rows = []
    for sid, text in SPEECH:
        _speak(text, out / "speech" / f"{sid}.flac")
        rows.append({"id": sid, "audio": f"{sid}.flac", "reference": text})
    _write_jsonl(out / "speech" / "speech.jsonl", rows)


def retrieval(out: Path) -> None:
    _write_jsonl(out / "corpus.jsonl", [{"id": i, "text": t} for i, t in CORPUS])
    _write_jsonl(out / "retrieval_queries.jsonl",
                 [{"id": q, "question": t, "relevant": r, "category": c} for q, t, r, c in QUERIES])


def pipeline(out: Path) -> None:
    rows = []
    for pid, text, relevant, answers in SPOKEN:
        _speak(text, out / "pipeline" / f"{pid}.flac")
        rows.append({"id": pid, "audio": f"{pid}.flac", "transcript": text, "relevant": relevant, "answers": answers})
    _write_jsonl(out / "pipeline" / "spoken_qa.jsonl", rows)


def classification(out: Path) -> None:
    rows = []
    for cid, text, lines, label in CLASSIFY:
        row: dict[str, Any] = {"id": cid, "text": text, "label": label}
        if lines:
            _text_image(lines, out / "classify" / f"{cid}.png")
            row["image"] = f"{cid}.png"
        rows.append(row)
    _write_jsonl(out / "classify" / "classify.jsonl", rows)


def support(out: Path) -> None:
    _write_jsonl(out / "support_tasks.jsonl", SUPPORT)


def image_claims(out: Path) -> None:
    """Photos from scikit-image (JPEG, long side 320 px) and drawn text images, with the questions."""
    from PIL import Image
    from skimage import data as samples

    folder = out / "image_claims"
    folder.mkdir(parents=True, exist_ok=True)
    for name, sample in CLAIM_PHOTOS.items():
        image = Image.fromarray(getattr(samples, sample)()).convert("RGB")
        image.thumbnail((320, 320))
        image.save(folder / f"{name}.jpg", quality=85, optimize=True)
    for name, lines in CLAIM_TEXTS.items():
        _text_image(lines, folder / f"{name}.png")
    rows = []
    for n, (image, question, kind, answers) in enumerate(IMAGE_CLAIMS, start=1):
        suffix = "jpg" if image in CLAIM_PHOTOS else "png"
        rows.append({"id": f"ic{n}", "image": f"{image}.{suffix}", "question": question,
                     "answers": answers or CANNOT_TELL, "answer_type": kind})
    _write_jsonl(folder / "questions.jsonl", rows)


def main(argv: list[str] | None = None) -> None:
    out = Path((argv or sys.argv[1:] or [str(HERE)])[0])
    for step in (squad, vqa, docvqa, summaries, retrieval, classification, support, image_claims):
        step(out)
    if shutil.which("espeak-ng") and shutil.which("sox"):
        speech(out)
        pipeline(out)
    else:
        print("espeak-ng or sox not found: audio fixtures not written", file=sys.stderr)


if __name__ == "__main__":
    main()
