/*
 * align.h - event-time alignment for one partition of a repartition topic.
 *
 * A stage of the repartition topology (docs/scaling.md) receives each transaction from one of
 * nsrc upstream partitions, with that source's sequence number, and from every source a
 * watermark W ("nothing below W will come from me"). The aligner holds transactions; its front
 * is the smallest watermark of all sources, and vg_align_release() lets go, in (ts, txn_id)
 * order, of those below a limit no greater than the front. The caller gives every partition
 * of a stage it holds the same limit (the smallest of their fronts) and merges what they
 * release: so a process handles a stage's transactions in time order, as a single process
 * replaying the log sorted by time does, whatever the interleaving of the sources and wherever
 * a failover moved them.
 *
 * Exactly once across crashes: a source that re-sends (the same record, the same sequence
 * number, after its own crash) is deduplicated; and what the aligner holds needs no storage of
 * its own. Its bookkeeping (vg_align_encode: the release limit, the watermarks, the last
 * sequence per source, its release count) is committed with the state, and a restart re-reads
 * the partition from the smallest offset still held (vg_align_low) with vg_align_resume():
 * records read before the commit are held again if they were held then, skipped if released.
 *
 * A transaction arriving below the release limit (its source was not in time order) is
 * released at once and counted as late: the one case where the order is not exact.
 */
#ifndef VG_ALIGN_H
#define VG_ALIGN_H

#include "engine/common.h"

#include <stdint.h>

/* A held transaction; owned by whoever holds it (the aligner, then the release callback). */
typedef struct vg_held {
    int64_t ts;
    int32_t src;
    uint64_t seq; /* the source's sequence number */
    int64_t offset;
    char *id; /* txn_id, for the order among equal ts; points into data */
    size_t idlen;
    char *data; /* the record as received */
    size_t len;
} vg_held_t;

/* Receives one released transaction (ownership: free with vg_held_free) and its release number
 * in this partition (0, 1, ...: the sequence number for the next stage). */
typedef void vg_release_cb(void *opaque, vg_held_t *held, uint64_t seq);

typedef struct vg_align vg_align_t;

vg_align_t *vg_align_new(int nsrc);
void vg_align_free(vg_align_t *align);
void vg_held_free(vg_held_t *held);

/* A transaction record at offset (src, seq, ts, id: its header; data/len copied): held, or
 * released at once (cb) if late. */
void vg_align_data(vg_align_t *align, int64_t offset, int32_t src, uint64_t seq, int64_t ts,
                   const char *id, size_t idlen, const void *data, size_t len, vg_release_cb *cb,
                   void *opaque);
/* A watermark record at offset: source src will send nothing below wm any more. */
void vg_align_watermark(vg_align_t *align, int64_t offset, int32_t src, int64_t wm);
/* What this partition can release below: its front; while re-reading after a restart, the
 * committed release limit. A process gives every partition of a stage the smallest of these. */
int64_t vg_align_limit(const vg_align_t *align);
/* Releases (cb), in (ts, txn_id) order, the held transactions below min(limit,
 * vg_align_limit()). */
void vg_align_release(vg_align_t *align, int64_t limit, vg_release_cb *cb, void *opaque);

/* 1 if the record at offset was read before the commit vg_align_resume() restored. */
int vg_align_replaying(const vg_align_t *align, int64_t offset);
/* Smallest offset of a held record, -1 if none: where a restart must read from. */
int64_t vg_align_low(const vg_align_t *align);
/* The front: the smallest watermark of all sources, INT64_MIN until each has sent one. */
int64_t vg_align_front(const vg_align_t *align);
/* The release limit so far: every transaction below it has been released (INT64_MIN: none). */
int64_t vg_align_released(const vg_align_t *align);
size_t vg_align_held(const vg_align_t *align);
uint64_t vg_align_late(const vg_align_t *align);

/* The bookkeeping, one line of text without newline: "LIMIT RELEASED UNTIL NSRC WM:SEQ ...". */
void vg_align_encode(const vg_align_t *align, vg_buf_t *out);
/* Restores the bookkeeping of a commit (a fresh aligner of the same nsrc): records below
 * offset `next` (the commit's input position) were read before it. -1 with errbuf if the text
 * is not what vg_align_encode writes. */
int vg_align_resume(vg_align_t *align, const char *text, int64_t next, char *errbuf, size_t errlen);

#endif
