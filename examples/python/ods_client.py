#!/usr/bin/env python3
"""A minimal ODS client: one record in, read back, three events in, features out.

It talks to an odsd running the shipped configuration (config/odsd.yaml, which odsd also
embeds: run `odsd` with no flags), using its `user_profile` table, its `transactions` event
template and the aggregations on it:

  1. Store.Put            a user_profile record for --key (age 42, country NL)
  2. Store.Get            that record back
  3. Features.PushEvents  three transactions of --key (12.5 at m1, 30.25 at m2, 7.5 at m1)
  4. Features.GetOnlineFeatures  txn_count@1h, txn_amount@1h, merchants_7d, user_profile:age

and prints one line per step, for example

  Put     user_profile/alice -> version 1
  Get     user_profile/alice -> age=42 country=NL
  Push    3 transactions -> applied=3 duplicates=0 rejected=0
  Feature txn_count@1h = 3 (PRESENT)
  Feature txn_amount@1h = 50.25 (PRESENT)
  Feature merchants_7d = 2 (PRESENT)
  Feature user_profile:age = 42 (PRESENT)

Exit code, as the `ods` CLI's: 0 on success, 1 if a call fails or an answer is not what a
correct server gives (record not found, an event rejected), 2 for bad usage, 3 if odsd cannot be
reached.

Dependencies: Debian's python3-grpcio (with python3-protobuf). The Python stubs are generated
from proto/, never committed; the build makes them in build/examples/python/gen, or by hand:

  mkdir -p gen && protoc -I proto --python_out=gen --grpc_python_out=gen \\
      --plugin=protoc-gen-grpc_python=/usr/bin/grpc_python_plugin proto/ods/v1/*.proto
  python3 examples/python/ods_client.py --stubs gen --target 127.0.0.1:7070

(Debian 12's python3-grpc-tools bundles a protoc too old for proto3 `optional`, which
features.proto uses, so `python3 -m grpc_tools.protoc` cannot compile these files.)
"""

import argparse
import importlib
import sys
import time
import uuid

import grpc


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--target", default="127.0.0.1:7070",
                        help="odsd's gRPC address, host:port (default: %(default)s)")
    parser.add_argument("--key", default=None,
                        help="the user id to write and read (default: a fresh random one, so "
                             "that runs do not add up)")
    parser.add_argument("--stubs", default=None,
                        help="directory holding the generated ods/v1/*_pb2*.py modules "
                             "(default: found on PYTHONPATH)")
    parser.add_argument("--api-key", default=None,
                        help="API key, sent as 'authorization: Bearer KEY' (docs/security.md); "
                             "not needed when odsd has no security.api_keys")
    parser.add_argument("--timeout", type=float, default=10.0,
                        help="seconds to wait for the connection and for each call")
    return parser.parse_args()


def load_stubs(stubs_dir):
    """Imports the generated modules, from `stubs_dir` if given."""
    if stubs_dir:
        sys.path.insert(0, stubs_dir)
    names = ["store_pb2", "store_pb2_grpc", "features_pb2", "features_pb2_grpc"]
    try:
        return [importlib.import_module("ods.v1." + name) for name in names]
    except ImportError as error:
        print(f"cannot import the generated stubs ({error}); generate them from proto/ and pass "
              "their directory as --stubs (see this file's docstring)", file=sys.stderr)
        sys.exit(2)


def format_value(value):
    """An ods.v1.Value as text: the set member of its `kind` oneof."""
    kind = value.WhichOneof("kind")
    if kind is None:
        return "(unset)"
    if kind == "float_vector_value":
        return "[" + ", ".join(str(v) for v in value.float_vector_value.values) + "]"
    return str(getattr(value, kind))


def format_feature_value(feature_value):
    """An ods.v1.FeatureValue: a scalar, or a list (last_n, top_k)."""
    if feature_value.WhichOneof("kind") == "list":
        return "[" + ", ".join(format_value(v) for v in feature_value.list.values) + "]"
    return format_value(feature_value.value)


def now_micros():
    return time.time_ns() // 1000


def main():
    args = parse_args()
    store_pb2, store_pb2_grpc, features_pb2, features_pb2_grpc = load_stubs(args.stubs)
    key = args.key or "example-" + uuid.uuid4().hex[:8]
    metadata = [("authorization", "Bearer " + args.api_key)] if args.api_key else None

    # One channel for all calls: it is thread-safe and reconnects by itself.
    channel = grpc.insecure_channel(args.target)
    try:
        grpc.channel_ready_future(channel).result(timeout=args.timeout)
    except grpc.FutureTimeoutError:
        print(f"cannot connect to odsd at {args.target} within {args.timeout}s", file=sys.stderr)
        return 3
    store = store_pb2_grpc.StoreStub(channel)
    features = features_pb2_grpc.FeaturesStub(channel)

    # 1. Put: a record is a key and typed fields. A Put replaces the whole record and answers
    #    its new version.
    record = store_pb2.Record(key=key, event_time_micros=now_micros())
    record.fields["age"].int64_value = 42
    record.fields["country"].string_value = "NL"
    put = store.Put(store_pb2.PutRequest(table="user_profile", records=[record]),
                    timeout=args.timeout, metadata=metadata)
    print(f"Put     user_profile/{key} -> version {put.versions[0]}")

    # 2. Get: results[i] answers keys[i]; `found` tells a missing key from an empty record.
    got = store.Get(store_pb2.GetRequest(table="user_profile", keys=[key]),
                    timeout=args.timeout, metadata=metadata)
    result = got.results[0]
    if not result.found:
        print(f"Get: user_profile/{key} not found right after its Put", file=sys.stderr)
        return 1
    fields = result.record.fields
    print(f"Get     user_profile/{key} -> age={format_value(fields['age'])} "
          f"country={format_value(fields['country'])}")

    # 3. PushEvents: each event names its template and carries the template's key field,
    #    timestamp field (microseconds) and declared fields. A bad event is rejected alone, by
    #    index; the call still succeeds. event_id lets odsd drop a re-sent event as a duplicate.
    events = []
    for amount, merchant in [(12.5, "m1"), (30.25, "m2"), (7.5, "m1")]:
        event = features_pb2.Event(template="transactions", event_id=uuid.uuid4().hex)
        event.fields["user_id"].string_value = key
        event.fields["ts"].timestamp_micros_value = now_micros()
        event.fields["amount"].double_value = amount
        event.fields["merchant"].string_value = merchant
        events.append(event)
    pushed = features.PushEvents(features_pb2.PushEventsRequest(events=events),
                                 timeout=args.timeout, metadata=metadata)
    print(f"Push    {len(events)} transactions -> applied={pushed.applied} "
          f"duplicates={pushed.duplicates} rejected={pushed.rejected_count}")
    for rejected in pushed.rejected:
        print(f"  event {rejected.index} rejected: {rejected.message}", file=sys.stderr)
    if pushed.rejected_count:
        return 1

    # 4. GetOnlineFeatures: the answer is columnar, columns[f] for features[f], and within a
    #    column values[i] and statuses[i] for entities[i]. A ref is AGGREGATION@WINDOW,
    #    AGGREGATION (a single window) or TABLE:FIELD.
    refs = ["txn_count@1h", "txn_amount@1h", "merchants_7d", "user_profile:age"]
    answer = features.GetOnlineFeatures(
        features_pb2.GetOnlineFeaturesRequest(entities=[key], features=refs),
        timeout=args.timeout, metadata=metadata)
    for column in answer.columns:
        status = features_pb2.FeatureStatus.Name(column.statuses[0])
        print(f"Feature {column.feature} = {format_feature_value(column.values[0])} ({status})")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except grpc.RpcError as error:
        # A failed call raises; its status code and message are what to print, not a traceback.
        print(f"call failed: {error.code().name}: {error.details()}", file=sys.stderr)
        sys.exit(1)
