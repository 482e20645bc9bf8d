/* Compute Engine metadata (metadata.h): four GETs in parallel on the
 * reporter's libcurl multi handle, each asked again after a 503 or a failed
 * connect (the metadata server's brief unavailability at boot and during
 * live migration) until one deadline for all of them. */
#include <ctype.h>
#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "agent/log.h"
#include "agent/metadata.h"
#include "agent/reporter.h"

#define N_FIELDS 4

static const struct {
	const char *path;
	size_t off;            /* in struct vp_instance */
	bool last_part;        /* keep what follows the last '/' */
} fields[N_FIELDS] = {
	{ "/computeMetadata/v1/instance/name", offsetof(struct vp_instance, name), false },
	{ "/computeMetadata/v1/instance/zone", offsetof(struct vp_instance, zone), true },
	{ "/computeMetadata/v1/project/project-id", offsetof(struct vp_instance, project), false },
	{ "/computeMetadata/v1/instance/network-interfaces/0/network",
	  offsetof(struct vp_instance, network), true },
};

struct md_req {
	struct vp_http_xfer x;         /* x.easy owned while 'active' */
	struct vp_metadata *m;         /* borrowed */
	int i;                         /* index into fields */
	bool active, finished, again;
	bool flavor;                   /* the answer said Metadata-Flavor: Google */
	char buf[VP_METADATA_VALUE_MAX + 1];
	size_t len;
	bool cut;                      /* the answer was longer than buf */
};

struct vp_metadata {
	uv_loop_t *loop;               /* borrowed */
	struct vp_curlm *cm;           /* borrowed */
	char *base;                    /* owned */
	struct vp_instance *inst;      /* borrowed */
	void (*done)(void *arg);
	void *arg;                     /* borrowed */
	struct md_req reqs[N_FIELDS];
	struct curl_slist *headers;    /* owned */
	uv_timer_t retry, deadline;
	int open;                      /* timers not yet closed */
	bool finished;                 /* 'done' ran, or closing */
};

bool vp_metadata_on_gce(const char *dmi_path)
{
	char buf[64] = "";
	FILE *f = fopen(dmi_path, "re");
	size_t n;

	if (!f)
		return false;
	n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[n] = '\0';
	while (n > 0 && isspace((unsigned char)buf[n - 1]))
		buf[--n] = '\0';
	return strcmp(buf, "Google Compute Engine") == 0;
}

bool vp_instance_known(const struct vp_instance *inst)
{
	return inst->name[0] || inst->zone[0] || inst->project[0] || inst->network[0];
}

static size_t on_body(char *ptr, size_t size, size_t nmemb, void *userdata)
{
	struct md_req *q = userdata;
	size_t n = size * nmemb;

	if (q->len + n > VP_METADATA_VALUE_MAX) {
		q->cut = true;
		return 0; /* aborts: no name here is that long */
	}
	memcpy(q->buf + q->len, ptr, n);
	q->len += n;
	return n;
}

static size_t on_header(char *ptr, size_t size, size_t nmemb, void *userdata)
{
	static const char name[] = "metadata-flavor:";
	struct md_req *q = userdata;
	size_t n = size * nmemb;
	size_t i = sizeof(name) - 1;

	if (n > i && strncasecmp(ptr, name, i) == 0) {
		while (i < n && (ptr[i] == ' ' || ptr[i] == '\t'))
			i++;
		q->flavor = n - i >= 6 && strncmp(ptr + i, "Google", 6) == 0;
	}
	return n;
}

/* Keeps a printable answer, or its last part; anything else stays unknown. */
static void store(struct md_req *q)
{
	char *dst = (char *)q->m->inst + fields[q->i].off;
	const char *v = q->buf;
	const char *slash;

	q->buf[q->len] = '\0';
	for (size_t i = 0; i < q->len; i++)
		if (!isgraph((unsigned char)q->buf[i]))
			return;
	slash = strrchr(v, '/');
	if (fields[q->i].last_part && slash)
		v = slash + 1;
	snprintf(dst, VP_METADATA_VALUE_MAX + 1, "%s", v);
}

static void finish(struct vp_metadata *m)
{
	if (m->finished)
		return;
	m->finished = true;
	uv_timer_stop(&m->retry);
	uv_timer_stop(&m->deadline);
	m->done(m->arg);
}

static void check_all(struct vp_metadata *m)
{
	for (int i = 0; i < N_FIELDS; i++)
		if (!m->reqs[i].finished)
			return;
	finish(m);
}

static void on_retry(uv_timer_t *t);

static void on_done(struct vp_http_xfer *x, CURLcode rc)
{
	struct md_req *q = x->data;
	struct vp_metadata *m = q->m;
	long code = 0;

	curl_easy_getinfo(x->easy, CURLINFO_RESPONSE_CODE, &code);
	curl_easy_cleanup(x->easy);
	x->easy = NULL;
	q->active = false;
	if (rc == CURLE_OK && code == 200 && q->flavor && !q->cut) {
		store(q);
		q->finished = true;
	} else if ((rc == CURLE_OK && code == 503) || rc == CURLE_COULDNT_CONNECT ||
	           rc == CURLE_OPERATION_TIMEDOUT || rc == CURLE_GOT_NOTHING) {
		q->again = true;
		if (!uv_is_active((uv_handle_t *)&m->retry))
			uv_timer_start(&m->retry, on_retry, VP_METADATA_RETRY_MS, 0);
	} else {
		vp_log_debug("metadata '%s%s': %s, HTTP %ld; left out of reports", m->base,
		             fields[q->i].path, curl_easy_strerror(rc), code);
		q->finished = true;
	}
	check_all(m);
}

static int start_req(struct vp_metadata *m, struct md_req *q)
{
	char url[VP_URL_MAX + 128];
	CURL *e = curl_easy_init();

	if (!e)
		return -ENOMEM;
	snprintf(url, sizeof(url), "%s%s", m->base, fields[q->i].path);
	q->len = 0;
	q->cut = q->flavor = q->again = false;
	curl_easy_setopt(e, CURLOPT_URL, url);
	curl_easy_setopt(e, CURLOPT_HTTPHEADER, m->headers);
	curl_easy_setopt(e, CURLOPT_PROXY, ""); /* a link-local server: never via a proxy */
	curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, (long)VP_METADATA_TIMEOUT_MS);
	curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_body);
	curl_easy_setopt(e, CURLOPT_WRITEDATA, q);
	curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, on_header);
	curl_easy_setopt(e, CURLOPT_HEADERDATA, q);
	q->x.easy = e;
	q->x.done = on_done;
	q->x.data = q;
	if (vp_curlm_add(m->cm, &q->x) < 0) {
		curl_easy_cleanup(e);
		q->x.easy = NULL;
		return -ENOMEM;
	}
	q->active = true;
	return 0;
}

static void on_retry(uv_timer_t *t)
{
	struct vp_metadata *m = t->data;

	for (int i = 0; i < N_FIELDS; i++) {
		struct md_req *q = &m->reqs[i];

		if (q->again && start_req(m, q) < 0)
			q->finished = true; /* out of memory: go without it */
	}
	check_all(m);
}

static void on_deadline(uv_timer_t *t)
{
	struct vp_metadata *m = t->data;

	vp_log_warning("metadata server '%s': no complete answer within %d ms; reporting "
	               "without what is missing", m->base, VP_METADATA_DEADLINE_MS);
	for (int i = 0; i < N_FIELDS; i++) {
		struct md_req *q = &m->reqs[i];

		if (q->active) {
			vp_curlm_remove(m->cm, &q->x);
			curl_easy_cleanup(q->x.easy);
			q->x.easy = NULL;
			q->active = false;
		}
		q->finished = true;
	}
	finish(m);
}

int vp_metadata_start(uv_loop_t *loop, struct vp_curlm *cm, const char *base_url,
                      struct vp_instance *inst, void (*done)(void *arg), void *arg,
                      struct vp_metadata **ret)
{
	struct vp_metadata *m = calloc(1, sizeof(*m));
	size_t len;

	if (!m)
		return -ENOMEM;
	m->base = strdup(base_url);
	m->headers = curl_slist_append(NULL, "Metadata-Flavor: Google");
	if (!m->base || !m->headers) {
		free(m->base);
		curl_slist_free_all(m->headers);
		free(m);
		return -ENOMEM;
	}
	len = strlen(m->base);
	while (len > 0 && m->base[len - 1] == '/')
		m->base[--len] = '\0';
	m->loop = loop;
	m->cm = cm;
	m->inst = inst;
	m->done = done;
	m->arg = arg;
	uv_timer_init(loop, &m->retry);
	uv_timer_init(loop, &m->deadline);
	m->retry.data = m->deadline.data = m;
	m->open = 2;
	uv_timer_start(&m->deadline, on_deadline, VP_METADATA_DEADLINE_MS, 0);
	for (int i = 0; i < N_FIELDS; i++) {
		m->reqs[i].m = m;
		m->reqs[i].i = i;
		if (start_req(m, &m->reqs[i]) < 0)
			m->reqs[i].finished = true;
	}
	*ret = m;
	return 0;
}

static void on_closed(uv_handle_t *h)
{
	struct vp_metadata *m = h->data;

	if (--m->open > 0)
		return;
	curl_slist_free_all(m->headers);
	free(m->base);
	free(m);
}

void vp_metadata_close(struct vp_metadata *m)
{
	if (!m)
		return;
	m->finished = true;
	for (int i = 0; i < N_FIELDS; i++) {
		struct md_req *q = &m->reqs[i];

		if (q->active) {
			vp_curlm_remove(m->cm, &q->x);
			curl_easy_cleanup(q->x.easy);
			q->active = false;
		}
	}
	uv_close((uv_handle_t *)&m->retry, on_closed);
	uv_close((uv_handle_t *)&m->deadline, on_closed);
}
