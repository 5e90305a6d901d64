#!/usr/bin/env python3
"""Follows changes of ODS tables over Features.Subscribe and resumes where it left off.

Prints one line per message: first `subscribed next_sequence=N`, then for each message its gap
notice if any (`gap from=A to=B reason=GAP_OVERFLOW`: changes [A, B) were skipped because this
client fell behind) and one line per change (`change sequence=S kind=CHANGE_PUT table=T
key=K`). When the stream breaks (odsd restarted, the network dropped) it subscribes again from
the sequence after the last one it saw, so it misses nothing that odsd still retains; changes
no longer retained arrive as a `GAP_NOT_RETAINED` gap notice instead (docs/api.md, "Subscribe").

    python3 examples/python/ods_subscribe.py --stubs gen --target 127.0.0.1:7070 \\
        --table user_profile

The channel keeps HTTP/2's 64 KiB receive window (`grpc.http2.bdp_probe` = 0), as docs/api.md
advises for subscribers: with gRPC's default, BDP probing, a client that stops reading lets
several MB pile up in odsd's socket before flow control stops the stream. `--bdp-probe` keeps
gRPC's default, for measuring such a client (benchmarks/subscribe_compare.sh).

Exit code: 0 after --max-messages messages, 1 if odsd refuses the subscription (bad table,
too many subscribers), 2 for bad usage, 3 if odsd cannot be reached. Stubs: as ods_client.py.
"""

import argparse
import importlib
import sys
import time

import grpc


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--target", default="127.0.0.1:7070",
                        help="odsd's gRPC address, host:port (default: %(default)s)")
    parser.add_argument("--table", action="append", default=[], required=True,
                        help="a table to follow (repeatable)")
    parser.add_argument("--from-sequence", type=int, default=None,
                        help="resume from this sequence (default: changes from now on)")
    parser.add_argument("--max-messages", type=int, default=0,
                        help="stop after this many messages (default: never)")
    parser.add_argument("--bdp-probe", action="store_true",
                        help="keep gRPC's default receive window growth (BDP probing)")
    parser.add_argument("--stubs", default=None,
                        help="directory holding the generated ods/v1/*_pb2*.py modules")
    parser.add_argument("--timeout", type=float, default=10.0,
                        help="seconds to wait for the connection")
    return parser.parse_args()


def load_stubs(stubs_dir):
    if stubs_dir:
        sys.path.insert(0, stubs_dir)
    try:
        return [importlib.import_module("ods.v1." + name)
                for name in ["features_pb2", "features_pb2_grpc"]]
    except ImportError as error:
        print(f"cannot import the generated stubs ({error}); see ods_client.py's docstring",
              file=sys.stderr)
        sys.exit(2)


def main():
    args = parse_args()
    features_pb2, features_pb2_grpc = load_stubs(args.stubs)
    options = [] if args.bdp_probe else [("grpc.http2.bdp_probe", 0)]
    channel = grpc.insecure_channel(args.target, options=options)
    try:
        grpc.channel_ready_future(channel).result(timeout=args.timeout)
    except grpc.FutureTimeoutError:
        print(f"cannot connect to odsd at {args.target} within {args.timeout}s", file=sys.stderr)
        return 3
    features = features_pb2_grpc.FeaturesStub(channel)

    next_sequence = args.from_sequence
    messages = 0
    while True:
        request = features_pb2.SubscribeRequest(tables=args.table)
        if next_sequence is not None:
            request.from_sequence = next_sequence
        try:
            for message in features.Subscribe(request):
                if messages == 0:
                    print(f"subscribed next_sequence={message.next_sequence}", flush=True)
                if message.HasField("gap"):
                    reason = features_pb2.GapReason.Name(message.gap.reason)
                    print(f"gap from={message.gap.from_sequence} to={message.gap.to_sequence} "
                          f"reason={reason}", flush=True)
                for change in message.changes:
                    kind = features_pb2.ChangeKind.Name(change.kind)
                    print(f"change sequence={change.sequence} kind={kind} "
                          f"table={change.source} key={change.key}", flush=True)
                next_sequence = message.next_sequence
                messages += 1
                if args.max_messages and messages >= args.max_messages:
                    return 0
        except grpc.RpcError as error:
            code = error.code()
            if code in (grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.NOT_FOUND,
                        grpc.StatusCode.RESOURCE_EXHAUSTED, grpc.StatusCode.FAILED_PRECONDITION,
                        grpc.StatusCode.PERMISSION_DENIED, grpc.StatusCode.UNAUTHENTICATED):
                print(f"subscription refused: {code.name}: {error.details()}", file=sys.stderr)
                return 1
            print(f"stream ended ({code.name}: {error.details()}); resuming from "
                  f"{next_sequence}", file=sys.stderr, flush=True)
        time.sleep(1)  # then subscribe again, from the sequence after the last one seen


if __name__ == "__main__":
    sys.exit(main())
