"""The official OpenAI Python SDK against embed-service's /v1/embeddings.

Run by tests/tests/sdks.rs with EMBED_URL (the live service). The reference for every vector is
the service's own /embed/batch with the same input type: the SDK must see the same numbers.
"""

import base64
import json
import os
import struct
import urllib.request

import openai

URL = os.environ["EMBED_URL"]
TEXTS = ["Rust engineer in Berlin", "Pâtissier à Lyon", "数据科学家"]
RAW = {"input_type": "raw"}
checks = 0


def check(condition, what):
    global checks
    assert condition, what
    checks += 1


def native(texts):
    body = json.dumps({"texts": texts, **RAW}).encode()
    request = urllib.request.Request(f"{URL}/embed/batch", body, {"content-type": "application/json"})
    return json.load(urllib.request.urlopen(request))["embeddings"]


def close(a, b):
    return len(a) == len(b) and max(abs(x - y) for x, y in zip(a, b)) <= 1e-6


expected = native(TEXTS)
dimension = len(expected[0])
client = openai.OpenAI(api_key="no-key-needed", base_url=f"{URL}/v1", max_retries=0)

one = client.embeddings.create(model="multilingual-e5-large", input=TEXTS[0], encoding_format="float", extra_body=RAW)
check(len(one.data) == 1 and close(one.data[0].embedding, expected[0]), "a single text, as floats")
check(one.usage.prompt_tokens > 0 and one.model, f"usage and model: {one.usage} {one.model}")

batch = client.embeddings.create(model="m", input=TEXTS, encoding_format="float", extra_body=RAW)
check([d.index for d in batch.data] == [0, 1, 2], "a batch, in input order")
check(all(close(d.embedding, e) for d, e in zip(batch.data, expected)), "a batch equals /embed/batch")

# The SDK's default: it asks for base64 and decodes it itself.
default = client.embeddings.create(model="m", input=TEXTS, extra_body=RAW)
check(all(close(list(d.embedding), e) for d, e in zip(default.data, expected)), "the SDK's default (base64, decoded)")

encoded = client.embeddings.create(model="m", input=TEXTS[1], encoding_format="base64", extra_body=RAW)
raw = base64.b64decode(encoded.data[0].embedding)
check(close(list(struct.unpack(f"<{len(raw) // 4}f", raw)), expected[1]), "explicit base64: little-endian f32")

sized = client.embeddings.create(model="m", input=TEXTS[2], dimensions=dimension, encoding_format="float", extra_body=RAW)
check(close(sized.data[0].embedding, expected[2]), "dimensions equal to the model's")

for what, call in [
    ("a dimension the model does not have", lambda: client.embeddings.create(model="m", input="x", dimensions=dimension - 1)),
    ("an empty list of texts", lambda: client.embeddings.create(model="m", input=[])),
]:
    try:
        call()
        raise AssertionError(f"{what} was accepted")
    except openai.UnprocessableEntityError as error:
        # The SDK keeps the body's "error" (our message) as `body`; the code is in the response.
        check(error.status_code == 422 and error.response.json()["code"], f"{what}: {error.response.text}")

print(f"openai {openai.__version__}: {checks} passed, 0 failed")
