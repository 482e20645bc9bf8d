/* libcurl's multi socket interface on the libuv loop, shared by everything
 * on that loop that speaks HTTP: the reporter and the metadata reader
 * (issue 5) and the http(s) probes (issue 4).
 *
 * CURLMOPT_SOCKETFUNCTION gives every socket a uv_poll_t, CURLMOPT_
 * TIMERFUNCTION drives a uv_timer_t, and curl_multi_socket_action() runs
 * from their callbacks. There is ONE multi handle per loop: vp_curlm_new()
 * hands out references to it, made on the first call and closed when the
 * last reference goes. One timer and one set of polls then serve every
 * transfer of the loop, however many owners add them.
 *
 * This is the API that agent/reporter.h declared for agent/reporter_curl.c,
 * unchanged, so that the reporter and the metadata reader use it as they
 * are. Single-threaded, like the loop: call it from the loop's thread only. */
#ifndef VP_CURL_UV_H
#define VP_CURL_UV_H

#include <curl/curl.h>
#include <uv.h>

/* One reference to a loop's multi handle. */
struct vp_curlm;

/* One transfer. The owner sets 'easy' up, keeps it, and frees it (in or
 * after 'done'). 'done' runs from the loop once the transfer ended; the
 * easy handle is out of the multi by then. */
struct vp_http_xfer {
	CURL *easy;                                          /* owned by the owner */
	void (*done)(struct vp_http_xfer *x, CURLcode rc);
	void *data;                                          /* the owner's */
};

/* A new reference to the multi handle of 'loop', made (with
 * curl_global_init()) when the loop has none. NULL when out of memory. */
struct vp_curlm *vp_curlm_new(uv_loop_t *loop);

/* Starts 'x'. Returns 0 or -errno (then 'done' never runs). */
int vp_curlm_add(struct vp_curlm *cm, struct vp_http_xfer *x);

/* Aborts 'x' without calling 'done'. The easy handle stays the owner's.
 * Harmless for a transfer that is already done. */
void vp_curlm_remove(struct vp_curlm *cm, struct vp_http_xfer *x);

/* Drops the reference. Every transfer that its owner added must be removed
 * or done first. 'closed' (may be NULL) runs with 'arg' from a later loop
 * turn, once nothing of this reference is left; when it was the last one,
 * after the multi handle's sockets and timer are closed too. Safe to call
 * from a 'done' callback. */
void vp_curlm_close(struct vp_curlm *cm, void (*closed)(void *arg), void *arg);

#endif
