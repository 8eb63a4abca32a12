/* vramcache's C ABI: what CUDAPluggableAllocator, ctypes and C programs call. Streams are
 * passed as cudaStream_t values (void*), so this header needs no CUDA headers. Every function
 * is safe to call with bad input: it fails, sets the per-thread last error, and changes
 * nothing. */
#ifndef VRAMCACHE_API_VRAMCACHE_H_
#define VRAMCACHE_API_VRAMCACHE_H_

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define VRAMCACHE_EXPORT __attribute__((visibility("default")))

/* Allocation through the pluggable-allocator signatures. vramcache_malloc throws a C++
 * exception (std::runtime_error with the full out-of-memory report) on failure, because
 * PyTorch's pluggable path never checks for NULL; vramcache_try_malloc returns NULL instead.
 * Size 0 is not a failure: both return NULL with vramcache_last_error_kind() VRAMCACHE_OK (as
 * PyTorch's allocators return a null pointer for 0 bytes); NULL means failure only for size > 0. */
VRAMCACHE_EXPORT void* vramcache_malloc(size_t size, int device, void* stream);
VRAMCACHE_EXPORT void* vramcache_try_malloc(size_t size, int device, void* stream);
/* With the canaries debug mode, a free that finds a damaged guard band still frees the memory;
 * the report goes to stderr and to vramcache_last_error(), with the kind
 * VRAMCACHE_ERROR_CORRUPTION. */
VRAMCACHE_EXPORT void vramcache_free(void* ptr, size_t size, int device, void* stream);
/* Why the last call on this thread failed ("" when it did not). */
VRAMCACHE_EXPORT const char* vramcache_last_error(void);
/* What kind of failure the last call on this thread had: */
#define VRAMCACHE_OK 0
#define VRAMCACHE_ERROR_INVALID 1 /* bad argument: unknown pointer, double free, bad size */
#define VRAMCACHE_ERROR_OUT_OF_MEMORY 2
#define VRAMCACHE_ERROR_CORRUPTION 3 /* a debug mode found corruption; the operation completed */
#define VRAMCACHE_ERROR_OTHER 4      /* device errors, wrong state, ... */
VRAMCACHE_EXPORT int vramcache_last_error_kind(void);

VRAMCACHE_EXPORT int vramcache_record_stream(void* ptr, void* stream);
/* Call before cudaStreamDestroy(stream): memory cached for it then waits for its work before a
 * later stream with the same handle value can get it (see docs/design.md, the stream model). */
VRAMCACHE_EXPORT int vramcache_stream_destroyed(void* stream);
VRAMCACHE_EXPORT int vramcache_empty_cache(void);
/* Debug mode canaries: verifies the guard bands of every live allocation on `device` (after a
 * device synchronization). 0 when intact (or canaries are off); -1 with vramcache_last_error()
 * naming each damaged band: allocation, offset from its start or end, stream. */
VRAMCACHE_EXPORT int vramcache_check_canaries(int device);
/* Lets `accessing_device` use memory vramcache holds on `owning_device`: call it after
 * cudaDeviceEnablePeerAccess(owning_device) was called with `accessing_device` current
 * (PyTorch's enablePeerAccess(dev = accessing, dev_to_access = owning)). In virtual-memory mode
 * the owning device's mappings, present and future, are made accessible to the accessing device
 * (cudaDeviceEnablePeerAccess does not cover them). 0, or -1 when either device does not exist
 * or both are the same. (Before this header named its arguments, the order was the reverse:
 * (device, peer) granted `peer` access to `device`'s memory.) */
VRAMCACHE_EXPORT int vramcache_enable_peer_access(int accessing_device, int owning_device);
/* Hard cap on the bytes `device` reserves: fraction x its total, fraction in [0, 1] as in
 * PyTorch (0.0: nothing can be allocated). -1 outside that range. */
VRAMCACHE_EXPORT int vramcache_set_memory_fraction(double fraction, int device);
/* torch.cuda.memory._set_allocator_settings(settings): PyTorch's syntax and keys, for every
 * device. Before the first allocation any key may be given (on top of the environment's
 * configuration, or vramcache_configure's). Afterwards max_split_size_mb,
 * max_non_split_rounding_mb, roundup_power2_divisions and garbage_collection_threshold change
 * for the next request; any other key that would change a setting fails (-1, naming it) and
 * nothing changes. -1 for malformed text or a bad value, as for PYTORCH_CUDA_ALLOC_CONF. */
VRAMCACHE_EXPORT int vramcache_set_allocator_settings(const char* settings);

/* Statistics. Every field of stats_fields.h in a flat, versioned struct: the caller sets
 * struct_size to sizeof(vramcache_stats) and vramcache fills what both sides know. Returns 0 on
 * success, -1 on error (see vramcache_last_error). */
typedef struct vramcache_stat {
  int64_t current, peak, allocated, freed;
} vramcache_stat;

#define VRAMCACHE_STATS_VERSION 1
typedef struct vramcache_stats {
  uint64_t struct_size;
  uint64_t version;
  /* {all, small_pool, large_pool} each */
  vramcache_stat allocation[3], segment[3], active[3], inactive_split[3];
  vramcache_stat allocated_bytes[3], reserved_bytes[3], active_bytes[3];
  vramcache_stat inactive_split_bytes[3], requested_bytes[3];
  vramcache_stat oversize_allocations, oversize_segments;
  int64_t num_alloc_retries, num_ooms, num_sync_all_streams, num_device_alloc, num_device_free;
  int64_t num_cache_hits, num_cross_stream_reuse, num_cache_releases, num_map_calls,
      num_unmap_calls, num_stitches;
  int64_t max_split_size, budget_bytes, address_space_reserved_bytes;
} vramcache_stats;

VRAMCACHE_EXPORT int vramcache_get_stats(int device, vramcache_stats* out);
/* torch.cuda.memory_stats() as a JSON object (same keys); the string stays valid until the
 * next call on this thread. */
VRAMCACHE_EXPORT const char* vramcache_stats_json(int device);
VRAMCACHE_EXPORT int vramcache_reset_peak_stats(int device);
VRAMCACHE_EXPORT int vramcache_reset_accumulated_stats(int device);

/* The allocator's segments and blocks, and (with record_history) its trace entries, as JSON in
 * the layout of torch.cuda.memory._snapshot(): {"segments": [...], "device_traces": [[...]]}.
 * Valid until the next call on this thread. */
VRAMCACHE_EXPORT const char* vramcache_snapshot_json(void);
/* The last out-of-memory report of `device` as JSON ("null" when none happened). */
VRAMCACHE_EXPORT const char* vramcache_last_oom_json(int device);
/* Number of devices vramcache serves (CUDA devices, or 1 on the simulated device). */
VRAMCACHE_EXPORT int vramcache_device_count(void);

/* --- Hooks of PyTorch's native CUDAAllocator interface (torch_plugin/native) --- */

/* CUDA graphs: while a capture is under way, allocations on `device` from streams for which
 * filter(stream, ctx) returns nonzero (all streams when filter is NULL) come from private pool
 * `pool` (PyTorch's MempoolId folded into 64 bits, never 0). */
typedef int (*vramcache_stream_filter)(void* stream, void* ctx);
VRAMCACHE_EXPORT int vramcache_begin_allocate_to_pool(int device, uint64_t pool,
                                                      vramcache_stream_filter filter, void* ctx);
VRAMCACHE_EXPORT int vramcache_end_allocate_to_pool(int device, uint64_t pool);
VRAMCACHE_EXPORT int vramcache_release_pool(int device, uint64_t pool);

/* Called after every out-of-memory, outside vramcache's lock (PyTorch's
 * attachOutOfMemoryObserver). `limit` is the budget, or the device's total without one. */
typedef void (*vramcache_oom_observer)(int device, size_t requested, size_t allocated, size_t limit,
                                       size_t device_free, void* ctx);
VRAMCACHE_EXPORT int vramcache_attach_oom_observer(int device, vramcache_oom_observer observer,
                                                   void* ctx);

/* The hard cap on reserved bytes as a fraction of the device's total (0 when none). */
VRAMCACHE_EXPORT double vramcache_get_memory_fraction(int device);
/* The largest cached free block of `device` (PyTorch's cacheInfo). */
VRAMCACHE_EXPORT int vramcache_cache_info(int device, size_t* largest_free_block);
/* The segment holding `ptr`: its base address, and its size in *size (PyTorch's
 * getBaseAllocation). NULL (and the last error) for a pointer vramcache does not hold. */
VRAMCACHE_EXPORT void* vramcache_base_allocation(void* ptr, size_t* size);
/* Total memory of `device` in bytes (as vramcache sees it), 0 on error. */
VRAMCACHE_EXPORT size_t vramcache_device_total_bytes(int device);

/* --- The snapshot as C structs: what vramcache_snapshot_json serializes, field by field --- */

#define VRAMCACHE_SNAPSHOT_VERSION 1

enum vramcache_block_state {
  VRAMCACHE_BLOCK_FREE = 0,         /* in a free list */
  VRAMCACHE_BLOCK_ALLOCATED = 1,    /* handed out */
  VRAMCACHE_BLOCK_PENDING_FREE = 2, /* freed, waiting for other streams' work (record_stream) */
  VRAMCACHE_BLOCK_CACHED = 3,       /* free, kept for an exact reuse */
  VRAMCACHE_BLOCK_PARKED = 4 /* free, of a destroyed stream: waits for that stream's last work */
};
/* PyTorch's trace actions (TraceEntry::Action) that vramcache records. */
enum vramcache_trace_action {
  VRAMCACHE_TRACE_ALLOC = 0,
  VRAMCACHE_TRACE_FREE_REQUESTED = 1,
  VRAMCACHE_TRACE_FREE_COMPLETED = 2,
  VRAMCACHE_TRACE_SEGMENT_ALLOC = 3,
  VRAMCACHE_TRACE_SEGMENT_FREE = 4,
  VRAMCACHE_TRACE_OOM = 5
};
typedef struct vramcache_block_info {
  uint64_t address;
  size_t size;
  size_t requested_size; /* the caller's size while allocated, else 0 */
  int state;             /* enum vramcache_block_state */
  /* The pool it belongs to: 0 the common one, else a private pool's id as given to
   * vramcache_begin_allocate_to_pool (UINT64_MAX: a range unmap_on_free retired). */
  uint64_t pool;
} vramcache_block_info;
typedef struct vramcache_segment_info {
  int device;
  uint64_t address;
  size_t size;
  void* stream;                    /* its home stream */
  int is_small;                    /* from the small-allocation pool */
  size_t first_block, block_count; /* its blocks: blocks[first_block .. first_block + count) */
} vramcache_segment_info;
typedef struct vramcache_trace_entry {
  int device;
  int action; /* enum vramcache_trace_action */
  uint64_t address;
  size_t size;
  void* stream;
  int64_t time_ns;
} vramcache_trace_entry;
typedef struct vramcache_snapshot {
  int version; /* VRAMCACHE_SNAPSHOT_VERSION */
  size_t segment_count;
  const vramcache_segment_info* segments; /* by device, then address */
  size_t block_count;
  const vramcache_block_info* blocks; /* each segment's in address order */
  size_t trace_count;
  const vramcache_trace_entry* traces; /* by device, then time (none without include_traces) */
} vramcache_snapshot;
/* Every device's segments and blocks, and with include_traces nonzero its recorded history
 * (record_history), copied now; valid until vramcache_snapshot_release. NULL on failure. */
VRAMCACHE_EXPORT const vramcache_snapshot* vramcache_snapshot_take(int include_traces);
/* Frees a snapshot of vramcache_snapshot_take; -1 for any other pointer or a second release. */
VRAMCACHE_EXPORT int vramcache_snapshot_release(const vramcache_snapshot* snapshot);

/* Configure before the first allocation (same syntax as VRAMCACHE_CONF; overrides it). When
 * the environment's variables (VRAMCACHE_CONF, PYTORCH_CUDA_ALLOC_CONF / PYTORCH_ALLOC_CONF) do
 * not parse, a `conf` with keys replaces them (a notice naming their error goes to stderr); an
 * empty `conf` fails with their error. */
VRAMCACHE_EXPORT int vramcache_configure(const char* conf);
/* 0 when the configuration vramcache uses, or would read from the environment at its first
 * allocation, is valid; -1 with the reason otherwise (vramcache.install() checks it at once
 * rather than at the first allocation). Changes nothing. */
VRAMCACHE_EXPORT int vramcache_configuration_status(void);
/* Returns every byte to the device and forgets the allocators (tests). */
VRAMCACHE_EXPORT int vramcache_shutdown(void);

#ifdef __cplusplus
}
#endif

#endif /* VRAMCACHE_API_VRAMCACHE_H_ */
