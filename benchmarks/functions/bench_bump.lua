-- The procedure of `ods_bench --workload execute` (docs/benchmarks.md, "Execute"): adds args.by
-- to the record's `hits` field, keeps its other fields, and returns the new count.
function execute(record, args)
  local out = record or {}
  out.hits = (out.hits or 0) + args.by
  return out.hits, out
end
