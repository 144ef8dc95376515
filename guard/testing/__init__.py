"""The public test kit: what tests, benchmarks and the eval use to run the guard against something that is not a
model. One fake OpenAI-compatible upstream, scripted per test (`upstream`); the bodies it speaks (`shapes`);
servers on 127.0.0.1, a background uvicorn and a real `guard serve` process (`server`); the guard's app as tests
build it (`app`); and the deterministic hash embedder (`HashEmbedder`, `GUARD_EMBEDDER=hash` in a process).
"""

from guard.forget.embedder import HashEmbedder
from guard.testing.app import guard_app, running, settings_for
from guard.testing.server import ADMIN, ADMIN_TOKEN, HANG_S, BackgroundServer, free_port, guard_process, wait_until
from guard.testing.shapes import chat_reply, chunk, chunks, completion_body, sse, sse_body, words
from guard.testing.upstream import FakeUpstream, Reply, fixed, from_env, varied_answers

__all__ = [
    "ADMIN",
    "ADMIN_TOKEN",
    "HANG_S",
    "BackgroundServer",
    "FakeUpstream",
    "HashEmbedder",
    "Reply",
    "chat_reply",
    "chunk",
    "chunks",
    "completion_body",
    "fixed",
    "free_port",
    "from_env",
    "guard_app",
    "guard_process",
    "running",
    "settings_for",
    "sse",
    "sse_body",
    "varied_answers",
    "wait_until",
    "words",
]
