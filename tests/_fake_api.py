"""A real HTTP server on 127.0.0.1 that speaks both API wire protocols, for tests and
benchmarks: OpenAI Chat Completions (`POST /v1/chat/completions`) and Anthropic
Messages (`POST /v1/messages`), with scripted fault injection and a request log.

Faults are scripted per prompt: `server.script("s003", "429", "500")` makes the next two
requests whose prompt contains "s003" fail with 429 then 500; the third is answered.
`server.script_next(...)` applies faults to the next requests in arrival order.

Fault kinds: "429" (with Retry-After), "500", "503" (with Retry-After), "hang" (no answer
for `hang_s`), "reset" (connection closed without a reply), "malformed" (200 with a body
that is not JSON), "empty" (200 with empty content), "truncated" (200 cut by the token
limit), "400", "401".

Run as a script for benchmarks (a separate process, so the server never competes with
the client for the GIL): `python tests/_fake_api.py --latency 2.0` prints `PORT <n>`.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import io
import json
import threading
import time
from collections import defaultdict, deque
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from PIL import Image

FAULTS = ("429", "500", "503", "hang", "reset", "malformed", "empty", "truncated", "400", "401")


@dataclass
class LoggedRequest:
    protocol: str  # "openai" or "anthropic"
    model: str | None
    prompt: str
    system: str | None
    images: list[dict[str, Any]]  # {"sha256", "media_type", "bytes", "detail"}
    body: dict[str, Any]
    authorized: bool
    fault: str | None
    t: float  # arrival, time.monotonic()


def default_answer(entry: LoggedRequest) -> str:
    """A parseable answer that also proves which image arrived."""
    digest = entry.images[0]["sha256"][:12] if entry.images else "none"
    return (
        f'<think>Looks like Paris.</think><answer>"Latitude": "48.8566", "Longitude": "2.3522"</answer> image={digest}'
    )


class FakeAPI:
    """`with FakeAPI(latency=0.1) as api: OpenAI(base_url=api.openai_url, ...)`."""

    def __init__(
        self,
        latency: float = 0.0,
        responder: Callable[[LoggedRequest], str] = default_answer,
        retry_after: str = "1",
        hang_s: float = 30.0,
        reasoning_tokens: int = 0,
        keep_bodies: bool = True,
    ) -> None:
        self.latency = latency
        self.responder = responder
        self.retry_after = retry_after
        self.hang_s = hang_s
        self.reasoning_tokens = reasoning_tokens
        self.keep_bodies = keep_bodies
        self.log: list[LoggedRequest] = []
        self.count = 0
        self.in_flight = 0
        self.peak_in_flight = 0
        self._lock = threading.Lock()
        self._scripted: dict[str, deque[str]] = defaultdict(deque)
        self._next: deque[str] = deque()
        self._stopping = threading.Event()
        self._server: ThreadingHTTPServer | None = None

    # -- scripting ------------------------------------------------------------------
    def script(self, key: str, *faults: str) -> None:
        """Fail the next requests whose prompt contains `key` (or whose image's sha256
        starts with it), one fault per request."""
        for fault in faults:
            assert fault in FAULTS, fault
        with self._lock:
            self._scripted[key].extend(faults)

    def script_next(self, *faults: str) -> None:
        with self._lock:
            self._next.extend(faults)

    def _take_fault(self, prompt: str, images: list[dict[str, Any]]) -> str | None:
        with self._lock:
            for key, queue in self._scripted.items():
                if queue and (key in prompt or any(i["sha256"].startswith(key) for i in images)):
                    return queue.popleft()
            if self._next:
                return self._next.popleft()
        return None

    def requests_for(self, key: str) -> list[LoggedRequest]:
        return [r for r in self.log if key in r.prompt]

    # -- lifecycle --------------------------------------------------------------------
    @property
    def port(self) -> int:
        assert self._server is not None
        return self._server.server_address[1]

    @property
    def openai_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    @property
    def anthropic_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, port: int = 0) -> FakeAPI:
        handler = type("Handler", (_Handler,), {"api": self})
        server = ThreadingHTTPServer(("127.0.0.1", port), handler, bind_and_activate=False)
        server.daemon_threads = True
        server.block_on_close = False
        server.request_queue_size = 256  # 32+ clients connect at once; the default 5 drops SYNs
        server.server_bind()
        server.server_activate()
        self._server = server
        threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
        return self

    def stop(self) -> None:
        self._stopping.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()

    def __enter__(self) -> FakeAPI:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


def _decode_images(parts: list[dict[str, Any]], protocol: str) -> list[dict[str, Any]]:
    images = []
    for part in parts:
        if protocol == "openai" and part.get("type") == "image_url":
            url = part["image_url"]["url"]
            header, b64 = url.split(",", 1)
            media_type = header.removeprefix("data:").split(";")[0]
            detail = part["image_url"].get("detail")
        elif protocol == "anthropic" and part.get("type") == "image":
            b64 = part["source"]["data"]
            media_type = part["source"]["media_type"]
            detail = None
        else:
            continue
        data = base64.b64decode(b64, validate=True)
        with Image.open(io.BytesIO(data)) as img:
            size, fmt, has_gps = list(img.size), img.format, 0x8825 in img.getexif()
        images.append(
            {
                "sha256": hashlib.sha256(data).hexdigest(),
                "media_type": media_type,
                "format": fmt,
                "bytes": len(data),
                "size": size,
                "exif_gps": has_gps,
                "detail": detail,
            }
        )
    return images


class _Handler(BaseHTTPRequestHandler):
    api: FakeAPI
    protocol_version = "HTTP/1.1"  # keep-alive, as a real API server does

    def log_message(self, *args) -> None:  # quiet
        pass

    def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
        api = self.api
        length = int(self.headers.get("Content-Length") or 0)
        body = json.loads(self.rfile.read(length))
        # The paths real servers serve: a base URL without /v1 (or with a typo) gets a 404.
        if self.path.rstrip("/") == "/v1/chat/completions":
            protocol = "openai"
        elif self.path.rstrip("/") == "/v1/messages":
            protocol = "anthropic"
        else:
            self._send(404, {"error": {"message": f"no route {self.path}"}})
            return
        system, prompt, images = None, "", []
        for message in body.get("messages", []):
            content = message.get("content")
            if isinstance(content, str):
                text_parts = [content]
                parts: list[dict[str, Any]] = []
            else:
                parts = content or []
                text_parts = [p.get("text", "") for p in parts if p.get("type") == "text"]
            if message.get("role") == "system":
                system = "\n".join(text_parts)
            else:
                prompt += "\n".join(text_parts)
                images += _decode_images(parts, protocol)
        if protocol == "anthropic" and body.get("system"):
            system = (
                body["system"]
                if isinstance(body["system"], str)
                else " ".join(b.get("text", "") for b in body["system"])
            )
        fault = api._take_fault(prompt, images)
        entry = LoggedRequest(
            protocol=protocol,
            model=body.get("model"),
            prompt=prompt,
            system=system,
            images=images,
            body=body if api.keep_bodies else {},
            authorized=bool(self.headers.get("Authorization") or self.headers.get("x-api-key")),
            fault=fault,
            t=time.monotonic(),
        )
        with api._lock:
            api.log.append(entry)
            api.count += 1
            api.in_flight += 1
            api.peak_in_flight = max(api.peak_in_flight, api.in_flight)
        try:
            if api.latency:
                time.sleep(api.latency)
            self._answer(protocol, body, entry, fault)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client gave up (a timeout): nothing to answer
        finally:
            with api._lock:
                api.in_flight -= 1

    def _answer(self, protocol: str, body: dict[str, Any], entry: LoggedRequest, fault: str | None) -> None:
        api = self.api
        if fault == "hang":
            api._stopping.wait(api.hang_s)
            self.close_connection = True
            return
        if fault == "reset":
            self.close_connection = True
            self.connection.close()
            return
        if fault in ("429", "503"):
            kind = "rate_limit_error" if fault == "429" else "overloaded_error"
            self._send(
                int(fault), {"error": {"message": f"injected {fault}", "type": kind}}, {"Retry-After": api.retry_after}
            )
            return
        if fault in ("500", "400", "401"):
            self._send(int(fault), {"error": {"message": f"injected {fault}", "type": "injected"}})
            return
        if fault == "malformed":
            self._send_raw(200, b'{"id": "x", "choices": [{"message": {"content": "trunc', "application/json")
            return
        text = api.responder(entry)
        finish = "stop"
        if fault == "empty":
            text = ""
        elif fault == "truncated":
            text, finish = text[: max(1, len(text) // 3)], "length"
        in_tokens = len(entry.prompt) // 4 + 1 + 255 * len(entry.images)  # a small image's GPT-4o tile price
        out_tokens = len(text) // 4 + 1 + api.reasoning_tokens
        if protocol == "openai":
            reply = {
                "id": f"chatcmpl-{api.count}",
                "object": "chat.completion",
                "created": int(time.time()),
                "model": body.get("model"),
                "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": finish}],
                "usage": {
                    "prompt_tokens": in_tokens,
                    "completion_tokens": out_tokens,
                    "total_tokens": in_tokens + out_tokens,
                    "completion_tokens_details": {"reasoning_tokens": api.reasoning_tokens},
                },
            }
        else:
            reply = {
                "id": f"msg_{api.count}",
                "type": "message",
                "role": "assistant",
                "model": body.get("model"),
                "content": [{"type": "text", "text": text}] if text else [],
                "stop_reason": "max_tokens" if finish == "length" else "end_turn",
                "stop_sequence": None,
                "usage": {"input_tokens": in_tokens, "output_tokens": out_tokens},
            }
        self._send(200, reply)

    def _send(self, status: int, payload: dict[str, Any], headers: dict[str, str] | None = None) -> None:
        self._send_raw(status, json.dumps(payload).encode(), "application/json", headers)

    def _send_raw(self, status: int, data: bytes, content_type: str, headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--latency", type=float, default=0.0)
    args = parser.parse_args()
    api = FakeAPI(latency=args.latency, keep_bodies=False).start(args.port)
    print(f"PORT {api.port}", flush=True)
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        api.stop()


if __name__ == "__main__":
    main()


def make_requests(folder, n: int, *, size: tuple[int, int] = (320, 240), prefix: str = "s") -> list:
    """n Requests over distinct small JPEGs written to `folder`; prompt i names sample "s00i"."""
    from pathlib import Path

    from greval.types import Request, Sample

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    requests = []
    for i in range(n):
        sample_id = f"{prefix}{i:03d}"
        path = folder / f"{sample_id}.jpg"
        Image.new("RGB", size, ((37 * i) % 256, (91 * i) % 256, 120)).save(path, quality=90)
        sample = Sample(sample_id=sample_id, gt_lat=48.85, gt_lon=2.35, image_path=path)
        requests.append(Request(sample=sample, task="all", prompt=f"Where was this photo taken? [{sample_id}]"))
    return requests
