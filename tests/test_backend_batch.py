"""HFVisionBackend.generate_batch: one left-padded generate call gives the same greedy answers as one
request at a time, with and without images in the same batch, per adapter."""

from conftest import tiny_config


def test_batch_matches_one_at_a_time(tiny_llava_dir, tiny_adapters, cat_photo):
    from mmagent.model.backend import HFVisionBackend

    backend = HFVisionBackend(tiny_config(tiny_llava_dir, **{"adapters.a": str(tiny_adapters["a"])}))
    conversations = [
        [{"role": "user", "content": "hello world"}],
        [{"role": "system", "content": "Answer briefly."},
         {"role": "user", "content": "What is in this picture? A cat sits on a mat. Describe the image."}],
        [{"role": "user", "content": [{"type": "image", "image": str(cat_photo)}, {"type": "text", "text": "Describe"}]}],
    ]
    side = backend.tokenizer.padding_side
    for adapter in (None, "a"):
        batch = backend.generate_batch(conversations, adapter=adapter)
        assert batch == [backend.complete(c, adapter=adapter) for c in conversations]
    assert backend.generate_batch(conversations, adapter="a") != backend.generate_batch(conversations, adapter=None)
    assert backend.tokenizer.padding_side == side  # restored for training and single requests
