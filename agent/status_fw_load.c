/* The page's firewall lines (status_fw.h): gcloud's exports read from
 * agent.gcloud_exports by the readers of `vpcprobe diagnose` and judged by
 * its own firewall_admits_connector step (agent/diagnose_fw.c), so that the
 * page and the command can never disagree. Runs on the loop at start and
 * at SIGHUP: the files are local and bounded (VP_STATUS_FW_FILE_MAX), and
 * only regular files are read, checked on the open descriptor, so that a
 * FIFO cannot hang the agent. */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "agent/diagnose.h"
#include "agent/gcloud_json.h"
#include "agent/log.h"
#include "agent/status_fw.h"
#include "probes/wire.h"

/* The exports the firewall step reads: the first inputs (gcloud.h). */
#define FW_INPUTS VP_GC_IN_PEERINGS

struct exports {
	char path[FW_INPUTS][VP_PATH_MAX];    /* "" when the file is absent */
	time_t newest;                        /* the newest mtime of those present */
	struct vp_gc_service service;
	struct vp_gc_connector connector;
	struct vp_fw_ruleset rules;
	struct vp_fw_ruleset eff_rules;       /* effective-firewalls.json's VPC rules */
	struct vp_fw_policies policies;
	enum vp_fw_order fw_order;
	struct vp_gc_instance instance;
	struct vp_gc_sql sql;
};

static int fail(char *err, size_t len, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int fail(char *err, size_t len, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(err, len, fmt, ap);
	va_end(ap);
	return -EINVAL;
}

static const char *file_type(mode_t m)
{
	return S_ISFIFO(m) ? "a FIFO" : S_ISDIR(m) ? "a directory" : S_ISSOCK(m) ? "a socket" :
	       S_ISCHR(m) ? "a character device" : S_ISBLK(m) ? "a block device" : "not a file";
}

/* Opens 'path' and reads it when it is a regular file of a bounded size.
 * The check is made on the descriptor that is then read, not on the name:
 * a FIFO put in the file's place after a stat() would block the loop in
 * open() and read(). O_NONBLOCK lets the open of a FIFO return at once (and
 * O_NOCTTY that of a terminal); a symbolic link is followed, since exports
 * are often links to where gcloud wrote them. Returns 1 with '*text'
 * owned, 0 when there is no such file, or -errno. */
static int read_export(const char *path, time_t *newest, char **text, char *err, size_t len)
{
	struct vp_gj c = { .file = path, .err = err, .errlen = len };
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
	struct stat st;
	size_t n = 0;
	int r;

	if (fd < 0)
		return errno == ENOENT ? 0 : fail(err, len, "'%s': %s", path, strerror(errno));
	if (fstat(fd, &st) < 0)
		r = fail(err, len, "'%s': fstat: %s", path, strerror(errno));
	else if (!S_ISREG(st.st_mode))
		r = fail(err, len, "'%s': %s, not a regular file; the agent reads exports only from "
		         "regular files (or links to them)", path, file_type(st.st_mode));
	else if (st.st_size > VP_STATUS_FW_FILE_MAX)
		r = fail(err, len, "'%s': %lld bytes, more than the agent reads (%d MiB)", path,
		         (long long)st.st_size, VP_STATUS_FW_FILE_MAX / (1024 * 1024));
	else
		r = vp_gj_read_fd(&c, fd, text, &n);
	(void)close(fd); /* read-only: nothing to lose */
	if (r == 0 && strlen(*text) != n) {
		/* The readers take the text up to its NUL: what follows must
		 * not be dropped unseen. */
		r = fail(err, len, "'%s': a NUL byte at offset %zu; expected JSON", path, strlen(*text));
		free(*text);
		*text = NULL;
	}
	if (r < 0)
		return r;
	if (st.st_mtime > *newest)
		*newest = st.st_mtime;
	return 1;
}

/* Input 'i' from its text; x->path[i] names it. */
static int parse_export(struct exports *x, int i, const char *text, char *err, size_t len)
{
	const char *p = x->path[i];

	switch (i) {
	case VP_GC_IN_SERVICE:
		return vp_gc_read_service(p, text, &x->service, err, len);
	case VP_GC_IN_CONNECTOR:
		return vp_gc_read_connector(p, text, &x->connector, err, len);
	case VP_GC_IN_RULES:
		return vp_gc_read_firewall_rules(p, text, &x->rules, err, len);
	case VP_GC_IN_EFFECTIVE:
		return vp_gc_read_effective_firewalls(p, text, &x->eff_rules, &x->policies, err, len);
	case VP_GC_IN_NETWORK:
		return vp_gc_read_network(p, text, &x->fw_order, err, len);
	case VP_GC_IN_INSTANCE:
		return vp_gc_read_instance(p, text, &x->instance, err, len);
	default:
		return vp_gc_read_sql(p, text, &x->sql, err, len);
	}
}

/* Reads every export present, one at a time; the first broken one (not a
 * regular file, too large, not the JSON expected) stops it, its message
 * naming the file (and the JSON path). */
static int read_files(const char *dir, struct exports *x, char *err, size_t len)
{
	struct stat st;

	if (stat(dir, &st) < 0)
		return fail(err, len, "gcloud_exports '%s': %s", dir, strerror(errno));
	if (!S_ISDIR(st.st_mode))
		return fail(err, len, "gcloud_exports '%s': not a directory", dir);
	for (int i = 0; i < FW_INPUTS; i++) {
		char *p = x->path[i], *text = NULL;
		int r;

		if ((size_t)snprintf(p, VP_PATH_MAX, "%s/%s", dir, vp_gc_input_file(i)) >= VP_PATH_MAX)
			return fail(err, len, "gcloud_exports '%s': path too long", dir);
		r = read_export(p, &x->newest, &text, err, len);
		if (r == 0)
			p[0] = '\0';   /* absent: its steps are unknown, as in diagnose */
		else if (r > 0)
			r = parse_export(x, i, text, err, len);
		free(text);
		if (r < 0)
			return r;
	}
	return 0;
}

/* The connector the page asks about: the export's, with the target's
 * connector_range as its range (the question is "does this range get in").
 * Without connector.json only the range is known: no name, so no tags,
 * rather than a guess. */
static void connector_of(const struct exports *x, const struct vp_target *t,
                         struct vp_gc_connector *k)
{
	if (x->path[VP_GC_IN_CONNECTOR][0])
		*k = x->connector;
	else
		memset(k, 0, sizeof(*k));
	k->has_range = true;
	k->range = t->connector_range;
}

static void judge(const struct exports *x, const struct vp_target *t, const char *when,
                  struct vp_diag_report *rep, struct vp_status_fw_line *l)
{
	const char (*p)[VP_PATH_MAX] = x->path;
	struct vp_gc_connector k;
	struct vp_diag_input in = {
		.target = t->url_text, .url = &t->url,
		.service = p[VP_GC_IN_SERVICE][0] ? &x->service : NULL, .connector = &k,
		.rules = p[VP_GC_IN_RULES][0] ? &x->rules : p[VP_GC_IN_EFFECTIVE][0] ? &x->eff_rules : NULL,
		.policies = p[VP_GC_IN_EFFECTIVE][0] ? &x->policies : NULL, .fw_order = x->fw_order,
		.instance = p[VP_GC_IN_INSTANCE][0] ? &x->instance : NULL,
		.sql = p[VP_GC_IN_SQL][0] ? &x->sql : NULL,
	};
	const struct vp_diag_step_out *o = &rep->steps[VP_DIAG_FIREWALL];

	if (t->url.host_type == VP_HOST_NAME) {
		snprintf(l->text, sizeof(l->text), "firewall (exports of %s): unknown: the target is "
		         "a name, and the firewall is judged for an address (instance.json's "
		         "networkIP); write the address in the target's URL", when);
		return;
	}
	connector_of(x, t, &k);
	if (vp_diagnose(&in, rep) < 0) {
		snprintf(l->text, sizeof(l->text), "firewall (exports of %s): unknown: out of memory "
		         "evaluating the rules", when);
		return;
	}
	l->answer = o->status == VP_DIAG_PASS ? VP_STATUS_FW_ALLOWED :
	            o->status == VP_DIAG_FAIL ? VP_STATUS_FW_DENIED : VP_STATUS_FW_UNKNOWN;
	snprintf(l->text, sizeof(l->text), "firewall (exports of %s): %s%s", when,
	         l->answer == VP_STATUS_FW_UNKNOWN ? "unknown: " : "", o->evidence);
	snprintf(l->fix, sizeof(l->fix), "%s", o->fix);
}

static void exports_done(struct exports *x)
{
	vp_fw_ruleset_done(&x->rules);
	vp_fw_ruleset_done(&x->eff_rules);
	vp_fw_policies_done(&x->policies);
}

/* Room for a line per target with connector_range; NULL when out of memory. */
static struct vp_status_fw *fw_new(const char *dir, const struct vp_target *t, size_t n)
{
	struct vp_status_fw *fw = calloc(1, sizeof(*fw));
	size_t want = 0;

	for (size_t i = 0; i < n; i++)
		want += t[i].connector_range.family != 0;
	if (!fw || !(fw->lines = calloc(want ? want : 1, sizeof(*fw->lines))))
		return vp_status_fw_free(fw);
	snprintf(fw->dir, sizeof(fw->dir), "%s", dir);
	for (size_t i = 0; i < n; i++)
		if (t[i].connector_range.family != 0)
			snprintf(fw->lines[fw->n++].target, sizeof(fw->lines[0].target), "%s", t[i].name);
	return fw;
}

int vp_status_fw_load(const char *dir, const struct vp_target *t, size_t n,
                      struct vp_status_fw **ret)
{
	struct vp_status_fw *fw = fw_new(dir, t, n);
	struct exports *x = calloc(1, sizeof(*x));
	struct vp_diag_report *rep = calloc(1, sizeof(*rep));
	struct tm tm;
	int r = -ENOMEM;

	if (!fw || !x || !rep)
		goto out;
	if (fw->n == 0) {
		/* No target asks: the files are not even read. */
		r = 0;
		goto out;
	}
	if (read_files(dir, x, fw->error, sizeof(fw->error)) == 0) {
		fw->error[0] = '\0';
		if (x->newest && gmtime_r(&x->newest, &tm))
			strftime(fw->when, sizeof(fw->when), "%Y-%m-%dT%H:%M:%SZ", &tm);
	}
	/* A text cut inside a character must not cost the line its JSON. */
	vp_utf8_clean(fw->error, false);
	if (fw->error[0])
		vp_log_err("gcloud exports: %s; the page shows the firewall as unknown", fw->error);
	for (size_t i = 0, j = 0; i < n && j < fw->n; i++) {
		struct vp_status_fw_line *l = &fw->lines[j];

		if (t[i].connector_range.family == 0)
			continue;
		j++;
		if (fw->error[0])
			snprintf(l->text, sizeof(l->text), "firewall: unknown: %s", fw->error);
		else
			judge(x, &t[i], fw->when[0] ? fw->when : "no file", rep, l);
		vp_utf8_clean(l->text, false);
		vp_utf8_clean(l->fix, false);
		if (l->answer == VP_STATUS_FW_UNKNOWN && !fw->error[0])
			vp_log_warning("target '%s': %s", l->target, l->text);
	}
	r = 0;
out:
	if (x)
		exports_done(x);
	free(x);
	free(rep);
	if (r < 0)
		vp_status_fw_free(fw);
	else
		*ret = fw;
	return r;
}

struct vp_status_fw *vp_status_fw_free(struct vp_status_fw *fw)
{
	if (fw)
		free(fw->lines);
	free(fw);
	return NULL;
}
