#!/usr/bin/env python3
"""gRPC echo server and client for Weft's end-to-end tests.

Uses grpcio with generic handlers on raw bytes, so there is no .proto and no generated
code. The service is `weft.test.Echo` with one method per RPC kind:

    /weft.test.Echo/Unary            "hello"         -> "NAME|hello"
    /weft.test.Echo/ServerStreaming  "stream"        -> "NAME|stream|0", "|1", "|2"
    /weft.test.Echo/ClientStreaming  "a", "b", "c"   -> "NAME|a,b,c"
    /weft.test.Echo/Bidi             "x", "y"        -> "NAME|x", "NAME|y"

Every call ends with the trailing metadata `x-echo-trailer: NAME:<method>`, which the
client checks, so a proxy that drops HTTP/2 trailers fails the test.

    grpc_echo.py server --listen 127.0.0.1:50051 --name b
        prints {"listening": ..., "port": ..., "name": ...} once serving; stops on SIGTERM.
    grpc_echo.py client --target 127.0.0.1:50051 [--authority echo.mesh] [--timeout 10]
        runs all four calls; prints one JSON line {"ok": true, "server": NAME, ...} and
        exits 0, or {"ok": false, "error": ...} and exits 1.
"""

import argparse
import json
import signal
import sys
import threading
from concurrent import futures

import grpc

SERVICE = "weft.test.Echo"
TRAILER_KEY = "x-echo-trailer"
CLIENT_METADATA = (("x-echo-client", "grpc_echo.py"),)


class Echo:
    """The four handlers; every response starts with the server's name."""

    def __init__(self, name):
        self.name = name.encode()

    def _reply(self, payload):
        return self.name + b"|" + payload

    def _trailer(self, context, method):
        context.set_trailing_metadata(((TRAILER_KEY, f"{self.name.decode()}:{method}"),))

    def unary(self, request, context):
        self._trailer(context, "unary")
        return self._reply(request)

    def server_streaming(self, request, context):
        self._trailer(context, "server_streaming")
        if request == b"fail":
            # A stream that fails after its first message: the status is only in the
            # trailers, after data, as a proxy must read it.
            yield self._reply(request)
            context.abort(grpc.StatusCode.UNAVAILABLE, "failing after one message")
        for i in range(3):
            yield self._reply(request + b"|" + str(i).encode())

    def client_streaming(self, request_iterator, context):
        self._trailer(context, "client_streaming")
        return self._reply(b",".join(request_iterator))

    def bidi(self, request_iterator, context):
        self._trailer(context, "bidi")
        for request in request_iterator:
            yield self._reply(request)


def serve(listen, name):
    echo = Echo(name)
    handlers = {
        "Unary": grpc.unary_unary_rpc_method_handler(echo.unary),
        "ServerStreaming": grpc.unary_stream_rpc_method_handler(echo.server_streaming),
        "ClientStreaming": grpc.stream_unary_rpc_method_handler(echo.client_streaming),
        "Bidi": grpc.stream_stream_rpc_method_handler(echo.bidi),
    }
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=16))
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(SERVICE, handlers),))
    port = server.add_insecure_port(listen)
    if not port:
        print(json.dumps({"ok": False, "error": f"cannot listen on {listen}"}), flush=True)
        return 1
    stopped = threading.Event()

    def stop(_signum, _frame):
        server.stop(grace=1).wait()
        stopped.set()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    server.start()
    print(json.dumps({"listening": listen, "port": port, "name": name}), flush=True)
    while not stopped.wait(0.5):
        pass
    return 0


class CheckFailed(Exception):
    """A response or trailer that is not what the echo server sends."""


def expect(what, got, want):
    if got != want:
        raise CheckFailed(f"{what}: got {got!r}, want {want!r}")


def server_name(response, payload):
    """The name prefix of `NAME|payload`."""
    name, sep, rest = response.partition(b"|")
    if not sep or rest != payload:
        raise CheckFailed(f"unary: got {response!r}, want NAME|{payload!r}")
    return name.decode()


def check_trailer(call, server, method):
    trailers = dict(call.trailing_metadata() or ())
    expect(f"{method} trailer {TRAILER_KEY}", trailers.get(TRAILER_KEY), f"{server}:{method}")


def run_client(target, authority, timeout):
    options = [("grpc.enable_http_proxy", 0)]
    if authority:
        options.append(("grpc.default_authority", authority))
    report = {"ok": False, "target": target, "authority": authority}
    step = "connect"
    try:
        with grpc.insecure_channel(target, options=options) as channel:

            def method(kind, name):
                return getattr(channel, kind)(
                    f"/{SERVICE}/{name}",
                    request_serializer=None,
                    response_deserializer=None,
                )

            step = "unary"
            response, call = method("unary_unary", "Unary").with_call(
                b"hello", timeout=timeout, metadata=CLIENT_METADATA
            )
            server = server_name(response, b"hello")
            check_trailer(call, server, "unary")
            report["server"] = server
            report["unary"] = response.decode()

            step = "server_streaming"
            call = method("unary_stream", "ServerStreaming")(
                b"stream", timeout=timeout, metadata=CLIENT_METADATA
            )
            responses = list(call)
            expect(
                "server_streaming",
                responses,
                [f"{server}|stream|{i}".encode() for i in range(3)],
            )
            check_trailer(call, server, "server_streaming")
            report["server_streaming"] = len(responses)

            step = "client_streaming"
            response, call = method("stream_unary", "ClientStreaming").with_call(
                iter([b"a", b"b", b"c"]), timeout=timeout, metadata=CLIENT_METADATA
            )
            expect("client_streaming", response, f"{server}|a,b,c".encode())
            check_trailer(call, server, "client_streaming")
            report["client_streaming"] = response.decode()

            step = "bidi"
            call = method("stream_stream", "Bidi")(
                iter([b"x", b"y"]), timeout=timeout, metadata=CLIENT_METADATA
            )
            responses = list(call)
            expect("bidi", responses, [f"{server}|x".encode(), f"{server}|y".encode()])
            check_trailer(call, server, "bidi")
            report["bidi"] = len(responses)

            step = "streamed_failure"
            call = method("unary_stream", "ServerStreaming")(
                b"fail", timeout=timeout, metadata=CLIENT_METADATA
            )
            received = []
            try:
                for response in call:
                    received.append(response)
            except grpc.RpcError as e:
                report["streamed_failure"] = f"{e.code().name} after {len(received)}"
            else:
                raise CheckFailed("streamed_failure: the stream ended without an error")
    except grpc.RpcError as e:
        report["error"] = f"{step}: {e.code().name}: {e.details()}"
    except CheckFailed as e:
        report["error"] = str(e)
    else:
        report["ok"] = True
        report["trailer"] = TRAILER_KEY
    print(json.dumps(report), flush=True)
    return 0 if report["ok"] else 1


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="mode", required=True)
    server = sub.add_parser("server", help="serve weft.test.Echo")
    server.add_argument("--listen", required=True, help="ADDR:PORT to listen on")
    server.add_argument("--name", required=True, help="name put in every response")
    client = sub.add_parser("client", help="call all four methods and check the replies")
    client.add_argument("--target", required=True, help="ADDR:PORT to connect to")
    client.add_argument("--authority", help=":authority to send (default: the target)")
    client.add_argument("--timeout", type=float, default=10.0, help="seconds per call")
    args = parser.parse_args()
    if args.mode == "server":
        return serve(args.listen, args.name)
    return run_client(args.target, args.authority, args.timeout)


if __name__ == "__main__":
    sys.exit(main())
