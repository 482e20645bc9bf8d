/* The reporter (reporter.h): one batch in flight at a time, read from the
 * spool, POSTed until a collector takes it. The decisions:
 *
 *   2xx                      acknowledged (OTLP: a partialSuccess's rejected
 *                            records are logged and counted, not sent again)
 *   json: 408, 429, 5xx      sent again after a backoff
 *   otlp: 429, 502, 503, 504 sent again (the OTLP/HTTP specification's list;
 *                            every other 4xx and 5xx "MUST NOT be retried")
 *   any other 4xx (5xx)      set aside: logged once with the collector's
 *                            answer, counted, and the next batch goes
 *   no answer, 1xx, 3xx      sent again after a backoff
 *
 * The backoff doubles from VP_REPORT_BACKOFF_MIN_MS to VP_REPORT_BACKOFF_MAX_MS
 * with jitter (half to all of it); a Retry-After, in seconds or as an HTTP
 * date, replaces it. A batch goes when VP_REPORT_FLUSH_MS passed or
 * batch_max records wait, whichever first.
 *
 * With otlp the metrics (otlp_metrics.h) go beside the batches, on a timer
 * of their own and a transfer of their own: a snapshot that a failure does
 * not queue (the next period sends the whole state again), and that never
 * waits for, or holds up, a batch. */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "agent/limits.h"
#include "agent/log.h"
#include "agent/otlp_metrics.h"
#include "agent/record.h"
#include "agent/reporter.h"
#include "vp_build.h"

/* One POST and what came back. */
struct post {
	struct vp_http_xfer xfer;          /* xfer.easy owned while 'sending' */
	char answer[VP_REPORT_ANSWER_MAX + 1];
	size_t answer_len;
	bool answer_cut;
	bool sending;
	char errbuf[CURL_ERROR_SIZE];
};

struct vp_reporter {
	uv_loop_t *loop;                   /* borrowed */
	struct vp_delivery_stats *stats;   /* borrowed */
	/* Settings, owned copies: a reporter may outlive its config (reload). */
	char *url, *token_file, *ca_file, *agent, *state_dir, *metadata_url;
	char *token;                       /* owned secret, wiped when freed */
	size_t token_len;
	enum vp_collector_format format;
	uint32_t batch_max, timeout_ms, spool_max_mb;

	struct vp_spool *spool;            /* owned */
	struct vp_curlm *cm;               /* owned */
	struct vp_metadata *md;            /* owned until its 'done' */
	struct vp_instance inst;
	struct curl_slist *headers;        /* owned; one of them holds the token */
	uv_timer_t flush_timer, retry_timer, stop_timer;

	struct vp_spool_batch batch;       /* the batch in flight, n == 0: none */
	char *body;                        /* owned: its POST body */
	size_t body_len;
	struct post post;                  /* the batch's */
	unsigned failures;                 /* in a row */
	uint64_t rng;
	char *dump;                        /* owned: one record's JSON */

	/* OTLP metrics; metrics_url NULL: none are sent. */
	char *metrics_url;                 /* owned */
	struct vp_scheduler *const *sched; /* borrowed: the caller's current scheduler */
	struct vp_otlp_metrics *metrics;   /* owned */
	uv_timer_t metrics_timer;
	uint64_t metrics_period_ms;
	char *metrics_body;                /* owned while mpost.sending */
	size_t metrics_body_len;
	struct post mpost;
	uint64_t start_ns;                 /* realtime of the start */
	uint64_t metrics_failed;           /* exports that failed, in all */
	unsigned metrics_failures;         /* in a row */
	bool metrics_owed;                 /* a stop came during an export: the final one follows it */

	bool backoff, waiting_meta, append_failed;
	uint64_t lost;                     /* results the spool could not keep, this outage */
	uint64_t last_failure_ms;          /* loop time of the last failed append */
	bool closing, flushing, finished;
	int open;                          /* parts still closing */
};

static void kick(struct vp_reporter *r);
static void finish(struct vp_reporter *r);

static int64_t realtime_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static uint64_t realtime_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* ---- settings ---- */

/* The token goes into a header: printable ASCII without spaces, and one
 * trailing newline (or CRLF) is not part of it. No message shows it. */
static int read_token(const char *path, char **ret, size_t *ret_len, char *err, size_t errlen)
{
	char buf[VP_TOKEN_MAX + 3];
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
	ssize_t n = fd < 0 ? -1 : read(fd, buf, sizeof(buf));
	size_t len = n > 0 ? (size_t)n : 0;
	int r = 0;

	if (n < 0) {
		r = -errno;
		snprintf(err, errlen, "collector.token_file '%s': %s (errno %d)", path, strerror(-r), -r);
		goto out;
	}
	if (len > 0 && buf[len - 1] == '\n')
		len -= len > 1 && buf[len - 2] == '\r' ? 2 : 1;
	r = -EINVAL;
	if (len == 0 || len > VP_TOKEN_MAX) {
		snprintf(err, errlen, "collector.token_file '%s': %s", path, len ? "longer than "
		         "4096 bytes" : "empty; it must hold the collector's bearer token");
		goto out;
	}
	for (size_t i = 0; i < len; i++) {
		if (buf[i] <= ' ' || buf[i] > '~') {
			snprintf(err, errlen, "collector.token_file '%s': byte %zu is not printable "
			         "ASCII, which a bearer token must be", path, i);
			goto out;
		}
	}
	r = -ENOMEM;
	*ret = malloc(len + 1);
	if (*ret) {
		memcpy(*ret, buf, len);
		(*ret)[len] = '\0';
		*ret_len = len;
		r = 0;
	}
out:
	if (fd >= 0)
		close(fd);
	explicit_bzero(buf, sizeof(buf));
	return r;
}

static bool same_str(const char *a, const char *b)
{
	return (!a && !b) || (a && b && !strcmp(a, b));
}

bool vp_reporter_same(const struct vp_reporter *r, const struct vp_config *cfg)
{
	const struct vp_collector *c = &cfg->collector;
	char err[VP_ERR_MAX];
	char *tok = NULL;
	size_t len = 0;
	bool same;

	same = same_str(r->url, c->url) && r->format == c->format &&
	       same_str(r->token_file, c->token_file) && same_str(r->ca_file, c->ca_file) &&
	       r->batch_max == c->batch_max && r->timeout_ms == c->timeout_ms &&
	       r->spool_max_mb == c->spool_max_mb && same_str(r->state_dir, cfg->state_dir) &&
	       same_str(r->agent, cfg->agent_name) && same_str(r->metadata_url, cfg->metadata_url);
	/* A rotated token is a change too. */
	if (same && r->token_file) {
		same = read_token(r->token_file, &tok, &len, err, sizeof(err)) == 0 &&
		       len == r->token_len && !memcmp(tok, r->token, len);
		if (tok)
			explicit_bzero(tok, len);
		free(tok);
	}
	return same;
}

static char *dup_opt(const char *s, bool *oom)
{
	char *d = s ? strdup(s) : NULL;

	if (s && !d)
		*oom = true;
	return d;
}

static int copy_settings(struct vp_reporter *r, const struct vp_config *cfg)
{
	const struct vp_collector *c = &cfg->collector;
	bool oom = false;

	r->url = dup_opt(c->url, &oom);
	r->token_file = dup_opt(c->token_file, &oom);
	r->ca_file = dup_opt(c->ca_file, &oom);
	r->agent = dup_opt(cfg->agent_name, &oom);
	r->state_dir = dup_opt(cfg->state_dir, &oom);
	r->metadata_url = dup_opt(cfg->metadata_url, &oom);
	r->format = c->format;
	r->batch_max = c->batch_max ? c->batch_max : VP_REPORT_BATCH_DEFAULT;
	r->timeout_ms = c->timeout_ms ? c->timeout_ms : VP_REPORT_TIMEOUT_MS_DEFAULT;
	r->spool_max_mb = c->spool_max_mb;
	r->dump = malloc(VP_SPOOL_RECORD_MAX);
	return oom || !r->dump ? -ENOMEM : 0;
}

static int make_headers(struct vp_reporter *r)
{
	struct curl_slist *l = curl_slist_append(NULL, "Content-Type: application/json");
	struct curl_slist *next;
	char *auth = NULL;

	/* curl would send "Expect: 100-continue" for a large body and wait for
	 * an answer that some collectors never give. */
	if (l && (next = curl_slist_append(l, "Expect:")) != NULL)
		l = next;
	if (l && r->token) {
		if (asprintf(&auth, "Authorization: Bearer %s", r->token) < 0)
			auth = NULL;
		next = auth ? curl_slist_append(l, auth) : NULL;
		if (auth)
			explicit_bzero(auth, strlen(auth));
		free(auth);
		if (!next)
			curl_slist_free_all(l);
		l = next;
	}
	r->headers = l;
	return l ? 0 : -ENOMEM;
}

static void free_headers(struct curl_slist *l)
{
	for (struct curl_slist *h = l; h; h = h->next)
		explicit_bzero(h->data, strlen(h->data));
	curl_slist_free_all(l);
}

static void free_reporter(struct vp_reporter *r)
{
	vp_spool_free(r->spool);
	vp_spool_batch_clear(&r->batch);
	free(r->body);
	free_headers(r->headers);
	if (r->token)
		explicit_bzero(r->token, r->token_len);
	free(r->token);
	free(r->url);
	free(r->token_file);
	free(r->ca_file);
	free(r->agent);
	free(r->state_dir);
	free(r->metadata_url);
	free(r->dump);
	free(r->metrics_url);
	free(r->metrics_body);
	vp_otlp_metrics_free(r->metrics);
	free(r);
	curl_global_cleanup();
}

/* ---- one POST ---- */

/* Reads at most VP_REPORT_ANSWER_MAX bytes of what the collector says; past
 * that the transfer is cut (curl reports CURLE_WRITE_ERROR, and the status
 * line, which came first, still decides). */
static size_t on_answer(char *ptr, size_t size, size_t nmemb, void *userdata)
{
	struct post *p = userdata;
	size_t n = size * nmemb;
	size_t room = VP_REPORT_ANSWER_MAX - p->answer_len;

	if (n > room) {
		memcpy(p->answer + p->answer_len, ptr, room);
		p->answer_len += room;
		p->answer_cut = true;
		return 0;
	}
	memcpy(p->answer + p->answer_len, ptr, n);
	p->answer_len += n;
	return n;
}

/* The answer as one printable line, for a log message. */
static const char *answer_text(const struct post *p, char *buf, size_t len)
{
	size_t j = 0;

	if (p->answer_len == 0)
		return "(no body)";
	for (size_t i = 0; i < p->answer_len && j + 1 < len; i++) {
		unsigned char c = (unsigned char)p->answer[i];

		buf[j++] = c < ' ' || c > '~' ? ' ' : (char)c;
	}
	buf[j] = '\0';
	if (p->answer_cut && j + 4 < len)
		strcat(buf, "...");
	return buf;
}

/* Starts a POST of 'body' to 'url' with the reporter's headers, TLS
 * settings and timeout; 'done' runs when it ended. */
static int start_post(struct vp_reporter *r, struct post *p, const char *url, const char *body,
                      size_t len, void (*done)(struct vp_http_xfer *x, CURLcode rc))
{
	CURL *e = curl_easy_init();
	long connect_ms = r->timeout_ms < VP_REPORT_CONNECT_MS ? (long)r->timeout_ms :
	                  VP_REPORT_CONNECT_MS;

	if (!e)
		return -ENOMEM;
	p->answer_len = 0;
	p->answer_cut = false;
	p->errbuf[0] = '\0';
	curl_easy_setopt(e, CURLOPT_URL, url);
	curl_easy_setopt(e, CURLOPT_POSTFIELDS, body);
	curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)len);
	curl_easy_setopt(e, CURLOPT_HTTPHEADER, r->headers);
	curl_easy_setopt(e, CURLOPT_USERAGENT, "vpcprobe/" VP_VERSION);
	curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, (long)r->timeout_ms);
	curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, connect_ms);
	curl_easy_setopt(e, CURLOPT_SSL_VERIFYPEER, 1L);
	curl_easy_setopt(e, CURLOPT_SSL_VERIFYHOST, 2L);
	if (r->ca_file)
		curl_easy_setopt(e, CURLOPT_CAINFO, r->ca_file);
	curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_answer);
	curl_easy_setopt(e, CURLOPT_WRITEDATA, p);
	curl_easy_setopt(e, CURLOPT_ERRORBUFFER, p->errbuf);
	p->xfer.easy = e;
	p->xfer.done = done;
	p->xfer.data = r;
	if (vp_curlm_add(r->cm, &p->xfer) < 0) {
		curl_easy_cleanup(e);
		p->xfer.easy = NULL;
		return -ENOMEM;
	}
	p->sending = true;
	return 0;
}

/* Ends a POST: its status, Retry-After and, when it got no answer, why
 * into 'why' (returns false then). A TLS verification failure says so in
 * words, naming the CA file: curl's own text names only OpenSSL's reason. */
static bool end_post(struct vp_reporter *r, struct post *p, CURLcode rc, long *code,
                     curl_off_t *retry_after, char *why, size_t whylen)
{
	const char *text;

	*code = 0;
	*retry_after = 0;
	curl_easy_getinfo(p->xfer.easy, CURLINFO_RESPONSE_CODE, code);
	curl_easy_getinfo(p->xfer.easy, CURLINFO_RETRY_AFTER, retry_after);
	curl_easy_cleanup(p->xfer.easy);
	p->xfer.easy = NULL;
	p->sending = false;
	p->answer[p->answer_len] = '\0';
	if ((rc == CURLE_OK || (rc == CURLE_WRITE_ERROR && p->answer_cut)) && *code != 0)
		return true;
	text = p->errbuf[0] ? p->errbuf : curl_easy_strerror(rc);
	if (rc == CURLE_PEER_FAILED_VERIFICATION)
		snprintf(why, whylen, "the collector's TLS certificate could not be verified against "
		         "%s%s%s: %s", r->ca_file ? "ca_file '" : "the system's CA certificates",
		         r->ca_file ? r->ca_file : "", r->ca_file ? "'" : "", text);
	else if (rc == CURLE_SSL_CACERT_BADFILE)
		snprintf(why, whylen, "ca_file '%s' holds no usable CA certificate: %s",
		         r->ca_file ? r->ca_file : "(system)", text);
	else
		snprintf(why, whylen, "%s", text);
	return false;
}

static void on_sent(struct vp_http_xfer *x, CURLcode rc);

static int send_batch(struct vp_reporter *r)
{
	return start_post(r, &r->post, r->url, r->body, r->body_len, on_sent);
}

static uint64_t next_random(struct vp_reporter *r)
{
	/* xorshift64: jitter needs spread, not secrecy. */
	r->rng ^= r->rng << 13;
	r->rng ^= r->rng >> 7;
	r->rng ^= r->rng << 17;
	return r->rng;
}

static uint64_t backoff_ms(struct vp_reporter *r, int64_t retry_after_s)
{
	unsigned shift = r->failures > 7 ? 6 : r->failures - 1;
	uint64_t base = (uint64_t)VP_REPORT_BACKOFF_MIN_MS << shift;

	if (retry_after_s > 0)
		return (uint64_t)(retry_after_s > VP_REPORT_RETRY_AFTER_MAX_S ?
		                  VP_REPORT_RETRY_AFTER_MAX_S : retry_after_s) * 1000;
	if (base > VP_REPORT_BACKOFF_MAX_MS)
		base = VP_REPORT_BACKOFF_MAX_MS;
	return base / 2 + next_random(r) % (base / 2 + 1);
}

static void on_retry(uv_timer_t *t)
{
	struct vp_reporter *r = t->data;

	r->backoff = false;
	kick(r);
}

static void retry(struct vp_reporter *r, const char *why, int64_t retry_after_s)
{
	uint64_t delay;

	r->failures++;
	r->stats->retries++;
	delay = backoff_ms(r, retry_after_s);
	snprintf(r->stats->last_error, sizeof(r->stats->last_error), "collector '%s': %s",
	         r->url, why);
	/* The first failure of an outage at warning, the rest at debug: a
	 * collector down for an hour must not fill the journal. */
	vp_log(r->failures == 1 ? VP_LOG_WARNING : VP_LOG_DEBUG, "collector '%s': %s; batch %"
	       PRIu64 " (%zu results) stays spooled, next try in %.1f s%s", r->url, why, r->batch.id,
	       r->batch.n, (double)delay / 1000, retry_after_s > 0 ? " (Retry-After)" : "");
	if (r->closing)
		return;
	r->backoff = true;
	uv_timer_start(&r->retry_timer, on_retry, delay, 0);
}

static void batch_done(struct vp_reporter *r)
{
	int e = vp_spool_ack(r->spool, r->batch.id);

	if (e < 0)
		vp_log_warning("%s; the batch may be sent again after a restart",
		               r->stats->last_error);
	vp_spool_batch_clear(&r->batch);
	free(r->body);
	r->body = NULL;
	r->body_len = 0;
	if (!r->closing && vp_spool_unread(r->spool) >= r->batch_max)
		kick(r);
}

/* Process-wide: a reload may replace the reporter, not reset the count. */
static uint64_t partial_total;

uint64_t vp_reporter_partial_total(void)
{
	return partial_total;
}

static void acknowledged(struct vp_reporter *r, long code)
{
	char msg[VP_REPORT_ANSWER_MAX + 1];
	uint64_t rejected = 0;

	if (r->format == VP_COLLECTOR_OTLP)
		rejected = vp_report_otlp_rejected(r->post.answer, r->post.answer_len, msg, sizeof(msg));
	if (rejected > r->batch.n)
		rejected = r->batch.n;
	if (rejected) {
		/* The specification: a partial success is not to be sent again. */
		vp_log_warning("collector '%s' took batch %" PRIu64 " but rejected %" PRIu64 " of its "
		               "%zu log records: %s", r->url, r->batch.id, rejected, r->batch.n,
		               msg[0] ? msg : "(no message)");
		r->stats->rejected += rejected;
		partial_total += rejected;
	}
	if (r->failures)
		vp_log_info("collector '%s': delivering again (HTTP %ld) after %u failed attempts",
		            r->url, code, r->failures);
	r->failures = 0;
	r->stats->delivered += r->batch.n - rejected;
	r->stats->batches++;
	r->stats->last_success_ms = realtime_ms();
	r->stats->last_error[0] = '\0';
	batch_done(r);
}

static void set_aside(struct vp_reporter *r, long code)
{
	char text[VP_REPORT_ANSWER_MAX + 8];

	vp_log_err("collector '%s' refused batch %" PRIu64 " (%zu results) with HTTP %ld: %s; set "
	           "aside, not sent again", r->url, r->batch.id, r->batch.n, code,
	           answer_text(&r->post, text, sizeof(text)));
	snprintf(r->stats->last_error, sizeof(r->stats->last_error), "collector '%s': HTTP %ld "
	         "for batch %" PRIu64 ", set aside", r->url, code, r->batch.id);
	r->stats->rejected += r->batch.n;
	r->failures = 0;
	batch_done(r);
}

static bool retryable(enum vp_collector_format format, long code)
{
	if (format == VP_COLLECTOR_OTLP)
		return code == 429 || code == 502 || code == 503 || code == 504;
	return code == 408 || code == 429 || code >= 500;
}

static void maybe_finish(struct vp_reporter *r)
{
	if (r->closing && !r->post.sending && !r->mpost.sending)
		finish(r);
}

static void on_sent(struct vp_http_xfer *x, CURLcode rc)
{
	struct vp_reporter *r = x->data;
	curl_off_t retry_after = 0;
	long code = 0;
	char why[CURL_ERROR_SIZE + PATH_MAX + 128];

	if (!end_post(r, &r->post, rc, &code, &retry_after, why, sizeof(why))) {
		retry(r, why, 0);
	} else if (code >= 200 && code < 300) {
		acknowledged(r, code);
	} else if (retryable(r->format, code) || code < 400 || code >= 600) {
		snprintf(why, sizeof(why), "HTTP %ld", code);
		retry(r, why, (int64_t)retry_after);
	} else {
		set_aside(r, code);
	}
	maybe_finish(r);
}

/* ---- metrics ---- */

/* Since when the delivery counts (stats) count: they belong to the process
 * and outlive a reporter that a reload replaces. */
static uint64_t stats_start_ns;

static void on_metrics_sent(struct vp_http_xfer *x, CURLcode rc);

static void metrics_failed(struct vp_reporter *r, const char *why)
{
	r->metrics_failed++;
	r->metrics_failures++;
	/* Like the batches: the first failure in a row at warning, the rest at
	 * debug. */
	vp_log(r->metrics_failures == 1 ? VP_LOG_WARNING : VP_LOG_DEBUG, "collector '%s': metrics "
	       "export failed: %s; %" PRIu64 " failed so far, the next export in %.0f s sends them "
	       "again", r->metrics_url, why, r->metrics_failed,
	       (double)r->metrics_period_ms / 1000);
}

static void send_metrics(struct vp_reporter *r)
{
	const struct vp_report_ctx ctx = { .agent = r->agent, .format = r->format,
	                                   .instance = &r->inst };
	struct vp_otlp_metrics_in in = { .ctx = &ctx, .sched = r->sched ? *r->sched : NULL,
	                                 .stats = r->stats, .stats_start_ns = stats_start_ns,
	                                 .partial = vp_reporter_partial_total(),
	                                 .exports_failed = r->metrics_failed,
	                                 .start_ns = r->start_ns, .now_ns = realtime_ns() };
	char why[64];
	int e;

	/* One export at a time; the one in flight carries nearly the same. And
	 * the resource waits for the metadata, as the batches do. */
	if (!r->metrics_url || r->mpost.sending || r->waiting_meta || r->finished)
		return;
	free(r->metrics_body);
	r->metrics_body = vp_otlp_metrics_body(r->metrics, &in, &r->metrics_body_len);
	if (!r->metrics_body) {
		snprintf(why, sizeof(why), "no memory for the body, or it is over %d MiB",
		         VP_REPORT_METRICS_BODY_MAX / (1024 * 1024));
		metrics_failed(r, why);
		return;
	}
	e = start_post(r, &r->mpost, r->metrics_url, r->metrics_body, r->metrics_body_len,
	               on_metrics_sent);
	if (e < 0) {
		snprintf(why, sizeof(why), "cannot start a POST: %s", strerror(-e));
		metrics_failed(r, why);
	}
}

static void on_metrics_sent(struct vp_http_xfer *x, CURLcode rc)
{
	struct vp_reporter *r = x->data;
	curl_off_t retry_after;
	long code;
	char why[CURL_ERROR_SIZE + PATH_MAX + VP_REPORT_ANSWER_MAX + 128];
	char text[VP_REPORT_ANSWER_MAX + 8];
	char msg[VP_REPORT_ANSWER_MAX + 1];
	uint64_t rejected;

	free(r->metrics_body);
	r->metrics_body = NULL;
	if (!end_post(r, &r->mpost, rc, &code, &retry_after, why, sizeof(why))) {
		metrics_failed(r, why);
	} else if (code < 200 || code >= 300) {
		/* Whatever the status: a snapshot is not kept to be sent again,
		 * the next period's carries the same counts and more. */
		snprintf(why, sizeof(why), "HTTP %ld: %s", code, answer_text(&r->mpost, text,
		                                                             sizeof(text)));
		metrics_failed(r, why);
	} else {
		rejected = vp_report_otlp_rejected_key(r->mpost.answer, r->mpost.answer_len,
		                                       "rejectedDataPoints", msg, sizeof(msg));
		if (rejected)
			vp_log_warning("collector '%s' took the metrics but rejected %" PRIu64 " data "
			               "points: %s", r->metrics_url, rejected, msg[0] ? msg : "(no message)");
		if (r->metrics_failures)
			vp_log_info("collector '%s': metrics delivered again (HTTP %ld) after %u failed "
			            "exports", r->metrics_url, code, r->metrics_failures);
		r->metrics_failures = 0;
	}
	if (r->metrics_owed) {
		r->metrics_owed = false;
		send_metrics(r); /* the stop's, within its VP_REPORT_STOP_MS */
	}
	maybe_finish(r);
}

static void on_metrics_timer(uv_timer_t *t)
{
	send_metrics(t->data);
}

/* The period: OpenTelemetry's OTEL_METRIC_EXPORT_INTERVAL (milliseconds,
 * the SDKs' variable for the same thing) when it is set and sane. */
static uint64_t metrics_period(void)
{
	const char *v = getenv("OTEL_METRIC_EXPORT_INTERVAL");
	char *end = NULL;
	unsigned long long ms;

	if (!v)
		return VP_REPORT_METRICS_MS;
	errno = 0;
	ms = strtoull(v, &end, 10);
	if (errno || end == v || *end != '\0' || v[0] == '-' || ms < VP_REPORT_METRICS_MIN_MS ||
	    ms > VP_REPORT_METRICS_MAX_MS) {
		vp_log_warning("OTEL_METRIC_EXPORT_INTERVAL '%.32s' is not a number of milliseconds in "
		               "%d..%d, ignoring; metrics go every %d ms", v, VP_REPORT_METRICS_MIN_MS,
		               VP_REPORT_METRICS_MAX_MS, VP_REPORT_METRICS_MS);
		return VP_REPORT_METRICS_MS;
	}
	return ms;
}

/* With otlp: the endpoint, the counts and the timer. A URL whose path does
 * not end in /v1/logs names no metrics endpoint; logs still go. */
static void start_metrics(struct vp_reporter *r)
{
	char url[VP_PATH_MAX + 16];
	int e;

	if (r->format != VP_COLLECTOR_OTLP)
		return;
	e = strlen(r->url) < VP_PATH_MAX ? vp_otlp_metrics_url(r->url, url, sizeof(url)) : -EINVAL;
	if (e < 0) {
		vp_log_warning("collector '%s': the path does not end in /v1/logs, so there is no "
		               "/v1/metrics beside it; metrics are not sent", r->url);
		return;
	}
	r->metrics_url = strdup(url);
	r->metrics = vp_otlp_metrics_new();
	if (!r->metrics_url || !r->metrics) {
		vp_log_err("collector '%s': out of memory; metrics are not sent", r->url);
		free(r->metrics_url);
		r->metrics_url = NULL;
		r->metrics = vp_otlp_metrics_free(r->metrics);
		return;
	}
	r->metrics_period_ms = metrics_period();
	uv_timer_start(&r->metrics_timer, on_metrics_timer, r->metrics_period_ms,
	               r->metrics_period_ms);
}

/* ---- when to send ---- */

static void kick(struct vp_reporter *r)
{
	char why[64];
	int e;

	if (r->finished || r->post.sending || r->backoff || r->waiting_meta ||
	    (r->closing && !r->flushing))
		return;
	if (r->batch.n == 0) {
		if (vp_spool_unread(r->spool) == 0)
			return;
		e = vp_spool_read(r->spool, r->batch_max, VP_REPORT_BATCH_BYTES, &r->batch);
		if (e < 0)
			vp_log_warning("spool: reading a batch: %s; trying again", strerror(-e));
		if (r->batch.n == 0)
			return;
	}
	if (!r->body)
		r->body = vp_report_body(&(struct vp_report_ctx){ .agent = r->agent,
		                         .format = r->format, .instance = &r->inst },
		                         &r->batch, &r->body_len);
	e = r->body ? send_batch(r) : -ENOMEM;
	if (e < 0) {
		snprintf(why, sizeof(why), "cannot start a POST: %s", strerror(-e));
		retry(r, why, 0);
	}
}

static void on_flush_timer(uv_timer_t *t)
{
	kick(t->data);
}

static void on_synced(void *arg)
{
	struct vp_reporter *r = arg;

	if (vp_spool_unread(r->spool) >= r->batch_max)
		kick(r);
}

static void on_metadata(void *arg)
{
	struct vp_reporter *r = arg;
	const struct vp_instance *in = &r->inst;

	vp_metadata_close(r->md);
	r->md = NULL;
	r->waiting_meta = false;
	if (vp_instance_known(in))
		vp_log_info("metadata: instance '%s', zone '%s', project '%s', network '%s'", in->name,
		            in->zone, in->project, in->network);
	kick(r);
}

/* The first failure of an outage is logged, the others only counted. */
static void append_failed(struct vp_reporter *r, const char *target, int64_t seq)
{
	r->lost++;
	r->last_failure_ms = uv_now(r->loop);
	if (r->append_failed)
		return;
	r->append_failed = true;
	vp_log_err("spool: cannot keep the result of target '%s': %s; results are lost until the "
	           "spool works again", target, r->stats->last_error[0] ? r->stats->last_error :
	           strerror((int)-seq));
}

static void append_worked(struct vp_reporter *r)
{
	/* A disk that is almost full fails some appends and takes others (a
	 * frame that still fits a page the file already has): the outage ends
	 * only after VP_REPORT_SPOOL_RECOVERED_MS without a failed append. */
	if (uv_now(r->loop) - r->last_failure_ms < VP_REPORT_SPOOL_RECOVERED_MS)
		return;
	vp_log_info("spool: results are kept again; %" PRIu64 " were lost meanwhile (counted in "
	            "vpcprobe_reports_dropped_total)", r->lost);
	r->append_failed = false;
	r->lost = 0;
}

void vp_reporter_add_run(struct vp_reporter *r, const struct vp_sched_target *st)
{
	const struct vp_config *cfg = vp_scheduler_config(st->sched);
	const struct vp_record_ctx ctx = { .agent = cfg->agent_name, .target = st->target->name,
	                                   .host = st->target->url.host,
	                                   .kind = st->target->url.kind };

	if (!r || r->closing)
		return;
	vp_otlp_metrics_observe(r->metrics, st, realtime_ns()); /* no-op without metrics */
	for (size_t i = 0; i < st->n_last; i++) {
		json_t *rec = vp_record_json(&ctx, &st->last[i]);
		size_t n = rec ? json_dumpb(rec, r->dump, VP_SPOOL_RECORD_MAX, VP_RECORD_DUMP_FLAGS) : 0;
		int64_t seq;

		json_decref(rec);
		seq = n > 0 && n <= VP_SPOOL_RECORD_MAX ? vp_spool_append(r->spool, r->dump, n) :
		      -EMSGSIZE;
		if (seq == -EMSGSIZE)
			r->stats->dropped++; /* no memory, or a record beyond any real size */
		if (seq < 0)
			append_failed(r, st->target->name, seq);
		else if (r->append_failed)
			append_worked(r);
	}
}

void vp_reporter_add_record(struct vp_reporter *r, const json_t *rec, const char *what)
{
	size_t n;
	int64_t seq;

	if (!r || r->closing)
		return;
	n = rec ? json_dumpb(rec, r->dump, VP_SPOOL_RECORD_MAX, VP_RECORD_DUMP_FLAGS) : 0;
	seq = n > 0 && n <= VP_SPOOL_RECORD_MAX ? vp_spool_append(r->spool, r->dump, n) : -EMSGSIZE;
	if (seq == -EMSGSIZE)
		r->stats->dropped++; /* no memory, or a record beyond any real size */
	if (seq < 0)
		append_failed(r, what, seq);
	else if (r->append_failed)
		append_worked(r);
}

/* ---- life ---- */

int vp_reporter_new(uv_loop_t *loop, const struct vp_config *cfg,
                    struct vp_delivery_stats *stats, struct vp_scheduler *const *sched,
                    struct vp_reporter **ret, char *err, size_t errlen)
{
	struct vp_reporter *r = calloc(1, sizeof(*r));
	int e = -ENOMEM;

	snprintf(err, errlen, "collector: out of memory");
	if (!r || curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
		free(r);
		return -ENOMEM;
	}
	r->loop = loop;
	r->stats = stats;
	r->sched = sched;
	r->start_ns = realtime_ns();
	if (stats_start_ns == 0)
		stats_start_ns = r->start_ns;
	if (copy_settings(r, cfg) < 0)
		goto fail;
	if (r->token_file) {
		e = read_token(r->token_file, &r->token, &r->token_len, err, errlen);
		if (e < 0)
			goto fail;
	}
	e = -ENOMEM;
	if (make_headers(r) < 0)
		goto fail;
	if (r->ca_file && access(r->ca_file, R_OK) < 0) {
		e = -errno;
		snprintf(err, errlen, "collector.ca_file '%s': %s (errno %d)", r->ca_file,
		         strerror(-e), -e);
		goto fail;
	}
	e = vp_spool_open(loop, r->state_dir, (uint64_t)r->spool_max_mb * 1024 * 1024, stats,
	                  on_synced, r, &r->spool, err, errlen);
	if (e < 0)
		goto fail;
	/* From here on there are handles: a failure below is out of memory, and
	 * leaves the spool closing on the loop. */
	r->cm = vp_curlm_new(loop);
	if (!r->cm) {
		vp_spool_close(r->spool, NULL, NULL);
		r->spool = NULL; /* freed with the process: the start fails anyway */
		e = -ENOMEM;
		goto fail;
	}
	r->rng = uv_hrtime() ^ ((uint64_t)getpid() << 32) ^ (uint64_t)(uintptr_t)r;
	uv_timer_init(loop, &r->flush_timer);
	uv_timer_init(loop, &r->retry_timer);
	uv_timer_init(loop, &r->stop_timer);
	uv_timer_init(loop, &r->metrics_timer);
	r->flush_timer.data = r->retry_timer.data = r->stop_timer.data = r->metrics_timer.data = r;
	uv_timer_start(&r->flush_timer, on_flush_timer, VP_REPORT_FLUSH_MS, VP_REPORT_FLUSH_MS);
	start_metrics(r);
	if (r->metadata_url || vp_metadata_on_gce(VP_DMI_PRODUCT_NAME)) {
		r->waiting_meta = vp_metadata_start(loop, r->cm, r->metadata_url ? r->metadata_url :
		                                    VP_METADATA_DEFAULT_URL, &r->inst, on_metadata, r,
		                                    &r->md) == 0;
	}
	*ret = r;
	return 0;
fail:
	free_reporter(r);
	return e;
}

static void part_closed(struct vp_reporter *r)
{
	if (--r->open == 0)
		free_reporter(r);
}

static void on_part_closed(void *arg)
{
	part_closed(arg);
}

static void on_timer_closed(uv_handle_t *h)
{
	part_closed(h->data);
}

static void abort_post(struct vp_reporter *r, struct post *p)
{
	if (!p->sending)
		return;
	vp_curlm_remove(r->cm, &p->xfer);
	curl_easy_cleanup(p->xfer.easy);
	p->xfer.easy = NULL;
	p->sending = false;
}

static void finish(struct vp_reporter *r)
{
	if (r->finished)
		return;
	r->finished = true;
	abort_post(r, &r->post);
	abort_post(r, &r->mpost);
	r->open = 6;
	uv_close((uv_handle_t *)&r->flush_timer, on_timer_closed);
	uv_close((uv_handle_t *)&r->retry_timer, on_timer_closed);
	uv_close((uv_handle_t *)&r->stop_timer, on_timer_closed);
	uv_close((uv_handle_t *)&r->metrics_timer, on_timer_closed);
	vp_spool_close(r->spool, on_part_closed, r);
	vp_curlm_close(r->cm, on_part_closed, r);
}

static void on_stop_timer(uv_timer_t *t)
{
	struct vp_reporter *r = t->data;

	if (r->post.sending)
		vp_log_warning("collector '%s': the last batch did not go within %d ms; it stays "
		               "spooled", r->url, VP_REPORT_STOP_MS);
	if (r->mpost.sending)
		vp_log_warning("collector '%s': the last metrics export did not go within %d ms",
		               r->metrics_url, VP_REPORT_STOP_MS);
	finish(r);
}

void vp_reporter_close(struct vp_reporter *r, bool flush)
{
	if (!r || r->closing)
		return;
	r->closing = true;
	uv_timer_stop(&r->flush_timer);
	uv_timer_stop(&r->metrics_timer);
	vp_metadata_close(r->md);
	r->md = NULL;
	r->waiting_meta = false;
	if (flush) {
		uv_timer_start(&r->stop_timer, on_stop_timer, VP_REPORT_STOP_MS, 0);
		if (!r->backoff) {
			r->flushing = true;
			/* Once, at a stop, on the loop thread: what the last half
			 * second produced becomes sendable now rather than at the
			 * next round. */
			(void)vp_spool_flush(r->spool); /* an error is logged by the close's own round */
			kick(r);
		}
		/* The final counts, as an OpenTelemetry SDK's shutdown sends them.
		 * An export in flight was built before the last results: the
		 * final one goes when it ends. */
		r->metrics_owed = r->mpost.sending;
		send_metrics(r);
		if (r->post.sending || r->mpost.sending)
			return;
	}
	finish(r);
}
