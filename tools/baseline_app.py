"""The P1 ceiling: a bare BlackSheep app on Granian that decodes the same JSON body and answers 201.

No auth, no dedup, no journal, no Arc: `POST /api/v1/memories` reads the body, decodes it into the same
msgspec Struct Memtrace uses (`NewMemory`, so validation cost is included), and answers 201 with the
decoded memory encoded back to JSON (a body of about the size Memtrace answers). Granian runs with the
settings `memtrace serve` uses (ASGI, uvloop, same worker count, same backpressure), so the ratio
Memtrace / baseline isolates what Memtrace itself costs.

    python tools/baseline_app.py --host 127.0.0.1 --port 9200 --workers 1
"""

from __future__ import annotations

import argparse

import msgspec
from blacksheep import Application, Content, Request, Response

from memtrace.config import ServerSettings
from memtrace.memory.model import NewMemory

JSON = b"application/json"
_decoder = msgspec.json.Decoder(NewMemory)
_encoder = msgspec.json.Encoder()


def build_app() -> Application:
    app = Application()

    async def create(request: Request) -> Response:
        body = await request.read() or b""
        try:
            memory = _decoder.decode(body)
        except (msgspec.ValidationError, msgspec.DecodeError) as exc:
            return Response(400, None, Content(JSON, _encoder.encode({"error": str(exc)})))
        return Response(201, None, Content(JSON, _encoder.encode(memory)))

    async def health(request: Request) -> Response:
        return Response(200, None, Content(JSON, b'{"status":"ok"}'))

    app.router.add_post("/api/v1/memories", create)
    app.router.add_get("/health", health)
    return app


def main() -> None:
    from granian import Granian
    from granian.constants import Interfaces, Loops
    from granian.log import LogLevels

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=9200)
    p.add_argument("--workers", type=int, default=1)
    args = p.parse_args()
    if args.host != "127.0.0.1":
        raise SystemExit("the baseline listens on 127.0.0.1 only")
    defaults = ServerSettings()
    Granian(
        "tools.baseline_app:build_app",
        factory=True,
        interface=Interfaces.ASGI,
        address=args.host,
        port=args.port,
        workers=args.workers,
        backpressure=defaults.backpressure,
        loop=Loops.uvloop,
        log_level=LogLevels.warning,
    ).serve()


if __name__ == "__main__":
    main()
