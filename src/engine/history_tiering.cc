// Retained events below RAM (event_templates.NAME.history_ssd_after): the move sweep and the
// reads back for GetHistoricalFeatures and backfills.
#include <string>
#include <vector>

#include "catalog.h"
#include "ods/common/logging.h"
#include "ods/engine/engine.h"
#include "ods/record/codec.h"
#include "ods/tier/rocksdb_tier.h"

namespace ods::engine {
namespace {

// Entities each shard visits per sweep (as the other sweeps: a bounded hold of the lock).
constexpr size_t kHistoryVisitsPerShard = 1024;

}  // namespace

size_t Engine::SweepHistoryOnce() {
  if (tier_ == nullptr) return 0;
  size_t moved = 0;
  std::vector<shard::HistoryMove> moves;
  std::vector<shard::HistoryGarbage> garbage;
  for (auto& shard : shards_) {
    moves.clear();
    shard->CollectHistoryMoves(kHistoryVisitsPerShard, moves);
    if (!moves.empty()) {
      tier::WriteBatch batch;
      size_t events = 0;
      for (const shard::HistoryMove& m : moves) {
        for (size_t k = 0; k < m.encoded.size(); ++k) {
          batch.PutEvent(m.template_id, m.entity, m.first_seq + k, m.encoded[k]);
        }
        events += m.encoded.size();
      }
      const Status written = tier_->WriteEvents(batch);
      if (!written.ok()) {
        tier_move_errors_.fetch_add(1, std::memory_order_relaxed);
        Logger("ods.engine")->warn("moving {} retained events below RAM: {}", events,
                                   written.message());
      }
      shard->CommitHistoryMoves(moves, written.ok());
      if (written.ok()) moved += events;
    }
    // After this shard's moves are written: a range deleted here covers them if their entity
    // went meanwhile.
    shard->TakeHistoryGarbage(garbage);
  }
  if (!garbage.empty()) {
    tier::WriteBatch batch;
    for (const shard::HistoryGarbage& g : garbage) {
      batch.DeleteEvents(g.template_id, g.entity, g.seq_end);
    }
    if (Status s = tier_->WriteEvents(batch); !s.ok()) {
      // Left behind: never read (no entity points at those seqs); cleared at the next start.
      Logger("ods.engine")->warn("deleting retained events below RAM: {}", s.message());
    }
  }
  return moved;
}

Status Engine::ReadColdEvents(uint32_t template_id, std::string_view entity, uint64_t first_seq,
                              uint64_t last_seq, std::vector<shard::HistoryEvent>& out) const {
  if (tier_ == nullptr) return FailedPreconditionError("no SSD tier is open");
  Status corrupt;
  size_t n = 0;
  ODS_RETURN_IF_ERROR(tier_->ReadEvents(
      template_id, entity, first_seq, last_seq, [&](uint64_t seq, std::string_view encoded) {
        if (!corrupt.ok()) return;
        // Reuses out's elements (and their values' buffers) from an earlier read.
        if (n == out.size()) out.emplace_back();
        shard::HistoryEvent& e = out[n++];
        if (!record::DecodeRow(encoded, e.event_time, e.values).ok()) {
          corrupt = Status(StatusCode::kDataLoss,
                           "retained event " + std::to_string(seq) + " of entity '" +
                               QuoteForMessage(entity) + "' of event template " +
                               CurrentCatalog().templates[template_id].config.name +
                               " below RAM is corrupt");
        }
      }));
  out.resize(n);
  return corrupt;
}

Status Engine::ReadColdHistory(uint32_t s, uint32_t template_id,
                               std::span<const std::string_view> entities,
                               std::span<const uint32_t> indices,
                               std::vector<shard::ColdHistory>& out) const {
  thread_local std::vector<shard::ColdHistoryRef> refs;
  refs.clear();
  shards_[s]->ColdHistoryOf(template_id, entities, indices, refs);
  out.resize(refs.size());  // keeps the elements of an earlier read for reuse
  for (size_t k = 0; k < refs.size(); ++k) {
    const shard::ColdHistoryRef& ref = refs[k];
    shard::ColdHistory& h = out[k];
    h.ref = ref;
    ODS_RETURN_IF_ERROR(
        ReadColdEvents(template_id, entities[ref.index], ref.first_seq, ref.last_seq, h.events));
  }
  return OkStatus();
}

}  // namespace ods::engine
