"""Reference re-implementations of the official scorers, used only by the conformance tests.

They follow the published scripts step for step (SQuAD ``evaluate-v1.1.py`` / ``evaluate-v2.0.py``,
the VQA ``vqaEval.py`` accuracy loop, the DocVQA ANLS loop) and deliberately keep their data layout —
raw dataset dicts, mutation of the answer dicts, dict inequality for the leave-one-out — so that they
are an independent path from the library's implementation in :mod:`mmagent.evals.metrics`.
"""

from __future__ import annotations

import collections
import re
import string


# ---- SQuAD (normalisation shared by v1.1 and v2.0) -----------------------------------------------
def squad_normalize(s):
    def remove_articles(text):
        return re.sub(r"\b(a|an|the)\b", " ", text)

    def white_space_fix(text):
        return " ".join(text.split())

    def remove_punc(text):
        exclude = set(string.punctuation)
        return "".join(ch for ch in text if ch not in exclude)

    return white_space_fix(remove_articles(remove_punc(s.lower())))


def squad_v1_evaluate(dataset, predictions):
    """evaluate-v1.1 ``evaluate(dataset, predictions)``; `dataset` is the JSON's ``data`` list."""

    def f1_score(prediction, ground_truth):
        p_toks = squad_normalize(prediction).split()
        g_toks = squad_normalize(ground_truth).split()
        num_same = sum((collections.Counter(p_toks) & collections.Counter(g_toks)).values())
        if num_same == 0:
            return 0
        precision = 1.0 * num_same / len(p_toks)
        recall = 1.0 * num_same / len(g_toks)
        return (2 * precision * recall) / (precision + recall)

    def exact_match_score(prediction, ground_truth):
        return squad_normalize(prediction) == squad_normalize(ground_truth)

    def best(fn, prediction, golds):
        return max(fn(prediction, g) for g in golds)

    f1 = exact_match = total = 0
    for article in dataset:
        for paragraph in article["paragraphs"]:
            for qa in paragraph["qas"]:
                total += 1
                if qa["id"] not in predictions:
                    continue  # "will receive score 0"
                golds = [a["text"] for a in qa["answers"]]
                prediction = predictions[qa["id"]]
                exact_match += best(exact_match_score, prediction, golds)
                f1 += best(f1_score, prediction, golds)
    return {"exact_match": 100.0 * exact_match / total, "f1": 100.0 * f1 / total}


def squad_v2_evaluate(dataset, preds, na_probs=None, na_prob_thresh=1.0):
    """evaluate-v2.0 ``main()`` minus file I/O and plots; returns the printed ``out_eval`` dict."""

    def get_tokens(s):
        return squad_normalize(s).split() if s else []

    def compute_exact(a_gold, a_pred):
        return int(squad_normalize(a_gold) == squad_normalize(a_pred))

    def compute_f1(a_gold, a_pred):
        gold_toks, pred_toks = get_tokens(a_gold), get_tokens(a_pred)
        num_same = sum((collections.Counter(gold_toks) & collections.Counter(pred_toks)).values())
        if len(gold_toks) == 0 or len(pred_toks) == 0:
            return int(gold_toks == pred_toks)
        if num_same == 0:
            return 0
        precision = 1.0 * num_same / len(pred_toks)
        recall = 1.0 * num_same / len(gold_toks)
        return (2 * precision * recall) / (precision + recall)

    qid_to_has_ans = {}
    exact_raw, f1_raw = {}, {}
    for article in dataset:
        for p in article["paragraphs"]:
            for qa in p["qas"]:
                qid_to_has_ans[qa["id"]] = bool(qa["answers"])
                golds = [a["text"] for a in qa["answers"] if squad_normalize(a["text"])] or [""]
                if qa["id"] not in preds:
                    continue
                exact_raw[qa["id"]] = max(compute_exact(a, preds[qa["id"]]) for a in golds)
                f1_raw[qa["id"]] = max(compute_f1(a, preds[qa["id"]]) for a in golds)
    given = na_probs is not None
    if not given:
        na_probs = {k: 0.0 for k in preds}

    def apply_thresh(scores):
        return {
            qid: float(not qid_to_has_ans[qid]) if na_probs[qid] > na_prob_thresh else s
            for qid, s in scores.items()
        }

    def make_eval(exact_scores, f1_scores, qid_list=None):
        if not qid_list:
            total = len(exact_scores)
            return {
                "exact": 100.0 * sum(exact_scores.values()) / total,
                "f1": 100.0 * sum(f1_scores.values()) / total,
                "total": total,
            }
        total = len(qid_list)
        return {
            "exact": 100.0 * sum(exact_scores[k] for k in qid_list) / total,
            "f1": 100.0 * sum(f1_scores[k] for k in qid_list) / total,
            "total": total,
        }

    def find_best_thresh(scores):
        cur = best = sum(1 for k in qid_to_has_ans if not qid_to_has_ans[k])
        best_thresh = 0.0
        for qid in sorted(na_probs, key=lambda k: na_probs[k]):
            if qid not in scores:
                continue
            if qid_to_has_ans[qid]:
                diff = scores[qid]
            else:
                diff = -1 if preds[qid] else 0
            cur += diff
            if cur > best:
                best, best_thresh = cur, na_probs[qid]
        return 100.0 * best / len(scores), best_thresh

    exact_t, f1_t = apply_thresh(exact_raw), apply_thresh(f1_raw)
    out = make_eval(exact_t, f1_t)
    has = [k for k, v in qid_to_has_ans.items() if v]
    no = [k for k, v in qid_to_has_ans.items() if not v]
    if has:
        out.update({f"HasAns_{k}": v for k, v in make_eval(exact_t, f1_t, has).items()})
    if no:
        out.update({f"NoAns_{k}": v for k, v in make_eval(exact_t, f1_t, no).items()})
    if given:
        out["best_exact"], out["best_exact_thresh"] = find_best_thresh(exact_raw)
        out["best_f1"], out["best_f1_thresh"] = find_best_thresh(f1_raw)
    return out


# ---- VQA (vqaEval.py) ------------------------------------------------------------------------------
def _vqa_tables():
    # The contraction table is data shared with the library (a 170-entry lookup); the tests check
    # entries of it by hand. Everything else below is the official procedure.
    from mmagent.evals.metrics.vqa import CONTRACTIONS

    manual_map = {"none": "0", "zero": "0", "one": "1", "two": "2", "three": "3", "four": "4", "five": "5",
                  "six": "6", "seven": "7", "eight": "8", "nine": "9", "ten": "10"}  # fmt: skip
    return CONTRACTIONS, manual_map, ["a", "an", "the"]


_VQA_PUNCT = [
    ";",
    r"/",
    "[",
    "]",
    '"',
    "{",
    "}",
    "(",
    ")",
    "=",
    "+",
    "\\",
    "_",
    "-",
    ">",
    "<",
    "@",
    "`",
    ",",
    "?",
    "!",
]
_PERIOD_STRIP = re.compile(r"(?!<=\d)(\.)(?!\d)")
_COMMA_STRIP = re.compile(r"(\d)(\,)(\d)")


def vqa_process_punctuation(in_text):
    out_text = in_text
    for p in _VQA_PUNCT:
        if (p + " " in in_text or " " + p in in_text) or (re.search(_COMMA_STRIP, in_text) is not None):
            out_text = out_text.replace(p, "")
        else:
            out_text = out_text.replace(p, " ")
    return _PERIOD_STRIP.sub("", out_text, re.UNICODE)  # sic: re.UNICODE lands in `count`


def vqa_process_digit_article(in_text):
    contractions, manual_map, articles = _vqa_tables()
    out = []
    for word in in_text.lower().split():
        word = manual_map.setdefault(word, word)
        if word not in articles:
            out.append(word)
    for i, word in enumerate(out):
        if word in contractions:
            out[i] = contractions[word]
    return " ".join(out)


def vqa_evaluate(gts, res):
    """``VQAEval.evaluate`` accuracy loop. `gts`: {qid: {"answers": [{"answer", "answer_id"}, ...]}};
    `res`: {qid: {"answer": str}}. Returns ({qid: accuracy 0-1}, overall 0-100 unrounded)."""
    acc_qa = {}
    for qid in gts:
        res_ans = res[qid]["answer"].replace("\n", " ").replace("\t", " ").strip()
        res_ans = vqa_process_digit_article(vqa_process_punctuation(res_ans))
        gt_answers = [ans["answer"] for ans in gts[qid]["answers"]]
        if len(set(gt_answers)) > 1:
            for ans_dic in gts[qid]["answers"]:
                ans_dic["answer"] = vqa_process_punctuation(ans_dic["answer"])
        gt_acc = []
        for gt_datum in gts[qid]["answers"]:
            others = [item for item in gts[qid]["answers"] if item != gt_datum]
            matching = [item for item in others if item["answer"] == res_ans]
            gt_acc.append(min(1, float(len(matching)) / 3))
        acc_qa[qid] = float(sum(gt_acc)) / len(gt_acc)
    return acc_qa, 100.0 * float(sum(acc_qa.values())) / len(acc_qa)


# ---- ANLS (DocVQA / ST-VQA evaluation loop) --------------------------------------------------------
def _levenshtein(s1, s2):
    if len(s1) > len(s2):
        s1, s2 = s2, s1
    distances = range(len(s1) + 1)
    for i2, c2 in enumerate(s2):
        row = [i2 + 1]
        for i1, c1 in enumerate(s1):
            row.append(distances[i1] if c1 == c2 else 1 + min((distances[i1], distances[i1 + 1], row[-1])))
        distances = row
    return distances[-1]


def anls_question(gold_answers, prediction, threshold=0.5):
    values = []
    for answer in gold_answers:
        gt = " ".join(answer.strip().lower().split())
        det = " ".join(prediction.strip().lower().split())
        length = max(len(answer.upper()), len(prediction.upper()))
        values.append(0.0 if length == 0 else float(_levenshtein(gt, det)) / float(length))
    result = 1 - min(values)
    return 0 if result < threshold else result
