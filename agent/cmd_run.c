/* vpcprobe run: the daemon. Probes every target on its interval, logs
 * verdict changes, reloads on SIGHUP, stops on SIGTERM, talks to systemd. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <systemd/sd-daemon.h>
#include <unistd.h>

#include "agent/cli.h"
#include "agent/curl_uv.h"
#include "agent/limits.h"
#include "agent/listen_checks.h"
#include "agent/log.h"
#include "agent/metadata.h"
#include "agent/reporter.h"
#include "agent/scheduler.h"
#include "agent/status.h"
#include "agent/status_fw.h"

static const char run_usage[] =
	"Usage: vpcprobe run [-c FILE]\n"
	"\n"
	"Runs the agent in the foreground: every target is probed on its own\n"
	"interval (first runs spread over the interval in 100 ms steps, never two\n"
	"runs of one target at once), verdict changes are logged, and the state\n"
	"is kept for the status page and the collector.\n"
	"\n"
	"Options:\n"
	"  -c, --config FILE   configuration file (default: " VP_CONFIG_DEFAULT_PATH "\n"
	"                      when it exists, else the embedded default)\n"
	"  -v, --verbose       also log every single result (debug)\n"
	"  -h, --help          show this help\n"
	"\n"
	"Signals: SIGHUP reloads the configuration (a bad one is reported and the\n"
	"running one kept; unchanged targets keep their history); SIGTERM and\n"
	"SIGINT stop the agent, which exits 0 within 5 seconds.\n"
	"\n"
	"Under systemd (Type=notify) the agent sends READY=1 once it runs, STATUS=\n"
	"with the counts of ok and failing targets, and WATCHDOG=1 when WatchdogSec=\n"
	"is set. Logs go to stderr, with journald priority prefixes when stderr is\n"
	"the journal.\n"
	"\n"
	"Exit status: 0 after a clean stop, 2 bad usage or bad configuration.\n";

struct daemon {
	uv_loop_t loop;
	const char *config_path;          /* borrowed from argv, NULL: the default */
	struct vp_config *cfg;            /* owned */
	struct vp_scheduler *sched;       /* owned */
	struct vp_config *old_cfg;        /* owned while the old scheduler closes */
	struct vp_scheduler *old_sched;   /* owned, closing */
	struct vp_listen_checks *checks;  /* owned: listener checks and beacons (issue 3) */
	struct vp_status *status;         /* owned: the status endpoints */
	struct vp_reporter *reporter;     /* owned, NULL without a collector; frees itself on close */
	struct vp_delivery_stats delivery; /* the spool's and the reporter's counts */
	/* Where the agent runs, for the page's header (issue 6). The reporter
	 * asks the metadata server for its own reports; the page has its own
	 * reading, since it runs with or without a collector. */
	struct vp_curlm *meta_cm;         /* owned reference until the reading ends */
	struct vp_metadata *md;           /* owned until its 'done' */
	struct vp_instance inst;
	/* The page's firewall lines from agent.gcloud_exports (issues 6 and
	 * 7), read at start and at each SIGHUP; NULL without the key. */
	struct vp_status_fw *fw;          /* owned */
	uv_signal_t sig_hup, sig_term, sig_int;
	uv_timer_t watchdog;              /* active only under WatchdogSec= */
	uv_timer_t grace;                 /* bounds the stop */
	uv_timer_t status_timer;          /* STATUS= at most once a second */
	bool status_dirty;                /* a result came since the last STATUS= */
	bool stopping;
	bool ready_sent;
	bool status_sent;                 /* the last STATUS= counts, sent */
	size_t sent_n, sent_ok, sent_failing;
};

static void notify_status(struct daemon *d)
{
	size_t n = vp_scheduler_count(d->sched), ok = 0, failing = 0;

	for (size_t i = 0; i < n; i++) {
		const struct vp_sched_target *st = vp_scheduler_target(d->sched, i);
		if (st->runs == 0)
			continue;
		if (st->verdict == VP_VERDICT_OK)
			ok++;
		else
			failing++;
	}
	/* Only changes: sd_notify() blocks when nothing drains NOTIFY_SOCKET,
	 * and systemd needs no repeats. */
	if (d->status_sent && n == d->sent_n && ok == d->sent_ok && failing == d->sent_failing)
		return;
	d->status_sent = true;
	d->sent_n = n;
	d->sent_ok = ok;
	d->sent_failing = failing;
	sd_notifyf(0, "STATUS=%zu targets: %zu ok, %zu failing, %zu not probed yet", n, ok, failing,
	           n - ok - failing);
}

static void on_result(struct vp_sched_target *st, void *arg)
{
	struct daemon *d = arg;

	for (size_t i = 0; i < st->n_last; i++)
		vp_log_debug("target '%s' %s port %u: %s %s: %s", st->target->name, st->last[i].address,
		             (unsigned)st->last[i].port, vp_verdict_name(st->last[i].v.verdict),
		             vp_verdict_reason(&st->last[i].v), st->last[i].v.detail);
	vp_status_observe(d->status, st);
	vp_reporter_add_run(d->reporter, st);
	if (st->sched == d->sched)
		d->status_dirty = true; /* counted by the status timer, not per result */
}

/* STATUS= from a timer: counting every target after every result cost 2.6%
 * of the agent's CPU with 1,000 targets (bench/daemon), and sd_notify()
 * blocks while nothing drains NOTIFY_SOCKET, so it is asked rarely. */
static void on_status_timer(uv_timer_t *t)
{
	struct daemon *d = t->data;

	if (!d->status_dirty)
		return;
	d->status_dirty = false;
	notify_status(d);
}

/* Beacon arrivals (issue 3) are results of kind beacon that come from the
 * beacons, not from the schedule: their own hook. The beacon has counted
 * them; the log and the collector take at most VP_BEACON_LOG_PER_S of them
 * a second, so that a flood of connections cannot push the probe results
 * out of the spool. A record says how many arrived unreported before it. */
static void on_beacon_arrival(struct vp_beacon_server *b, const struct vp_beacon_arrival *a,
                              void *arg)
{
	struct daemon *d = arg;
	char expect[VP_DETAIL_MAX], detail[VP_DETAIL_MAX], hint[VP_HINT_MAX];
	uint64_t skipped;
	json_t *rec;

	if (!vp_beacon_server_log_gate(b, &skipped))
		return;
	vp_beacon_server_expect_text(b, expect, sizeof(expect));
	vp_beacon_explain(a, vp_beacon_server_listen(b), expect, detail, sizeof(detail), hint,
	                  sizeof(hint));
	vp_log_info("beacon: %s%s", detail, skipped ? "; more arrived than are logged" : "");
	if (!d->reporter)
		return;
	rec = vp_beacon_arrival_record(d->cfg->agent_name, vp_beacon_server_listen(b), expect, a);
	if (rec && skipped)
		json_object_set_new(rec, "arrivals_not_reported", json_integer((json_int_t)skipped));
	vp_reporter_add_record(d->reporter, rec, "a beacon arrival");
	json_decref(rec);
}

/* Every reading of a listener check is a result of kind listener, as every
 * run of a target is a result of its kind. */
static void on_listen_result(const struct vp_listen_result *r, void *arg)
{
	struct daemon *d = arg;
	json_t *rec;

	if (!d->reporter)
		return;
	rec = vp_listen_result_record(d->cfg->agent_name, r);
	vp_reporter_add_record(d->reporter, rec, "a listener check");
	json_decref(rec);
}

static void on_old_closed(struct vp_scheduler *s, void *arg)
{
	struct daemon *d = arg;

	(void)s;
	d->old_sched = vp_scheduler_free(d->old_sched);
	d->old_cfg = vp_config_free(d->old_cfg);
}

/* SIGHUP: the reporter stays when the collector settings are the same;
 * otherwise it is replaced (a batch in flight stays in the spool). A new
 * one that cannot start (an unreadable token file, say) fails the reload
 * and the running settings are taken up again. */
static int reload_reporter(struct daemon *d, const struct vp_config *cfg)
{
	char err[VP_ERR_MAX];

	if ((d->reporter && cfg->collector.url && vp_reporter_same(d->reporter, cfg)) ||
	    (!d->reporter && !cfg->collector.url))
		return 0;
	vp_reporter_close(d->reporter, false); /* lets go of the spool's lock at once */
	d->reporter = NULL;
	if (!cfg->collector.url)
		return 0;
	if (vp_reporter_new(&d->loop, cfg, &d->delivery, &d->sched, &d->reporter, err,
	                    sizeof(err)) == 0) {
		vp_log_info("reload: collector '%s'", cfg->collector.url);
		return 0;
	}
	vp_log_err("reload: %s", err);
	if (d->cfg->collector.url &&
	    vp_reporter_new(&d->loop, d->cfg, &d->delivery, &d->sched, &d->reporter, err,
	                    sizeof(err)) < 0)
		vp_log_err("reload: %s; results are not delivered until a reload works", err);
	return -EINVAL;
}

/* SIGHUP: the new configuration is validated first; a bad one changes
 * nothing. A good one replaces the schedule; targets of the same name and
 * URL keep their history. */
static void reload(struct daemon *d)
{
	const char *path = d->config_path ? d->config_path : d->cfg->source;
	char err[VP_CONFIG_MAX_ERRORS * VP_ERR_MAX];
	struct vp_config *cfg = NULL;
	struct vp_scheduler *s;
	int r;

	if (d->old_sched) {
		vp_log_warning("reload: the previous reload is still finishing, ignoring");
		return;
	}
	if (!strcmp(path, VP_CONFIG_EMBEDDED_NAME))
		r = vp_config_load_string(vp_config_default_json, path, &cfg, err, sizeof(err));
	else
		r = vp_config_load_file(path, &cfg, err, sizeof(err));
	if (r < 0) {
		for (char *line = strtok(err, "\n"); line; line = strtok(NULL, "\n"))
			vp_log_err("reload: %s", line);
		vp_log_err("reload: keeping the running configuration");
		return;
	}
	if (reload_reporter(d, cfg) < 0) {
		vp_log_err("reload: keeping the running configuration");
		vp_config_free(cfg);
		return;
	}
	s = vp_scheduler_new(&d->loop, cfg, on_result, d);
	if (!s) {
		vp_log_err("reload: out of memory; keeping the running configuration");
		vp_config_free(cfg);
		return;
	}
	vp_scheduler_start(s, d->sched);
	d->old_sched = d->sched;
	d->old_cfg = d->cfg;
	d->sched = s;
	d->cfg = cfg;
	(void)vp_listen_checks_apply(d->checks, cfg); /* failures are logged; the rest run */
	vp_scheduler_stop(d->old_sched, on_old_closed, d);
	vp_log_info("reloaded config '%s': %zu targets", path, cfg->n_targets);
	notify_status(d);
}

/* Ends the metadata reading, what is in flight first: the multi handle's
 * reference goes once no transfer of ours is on it. */
static void close_metadata(struct daemon *d)
{
	vp_metadata_close(d->md); /* accepts NULL; its 'done' does not run */
	d->md = NULL;
	if (d->meta_cm)
		vp_curlm_close(d->meta_cm, NULL, NULL);
	d->meta_cm = NULL;
}

/* The metadata reading is over: all four answers are in, or its deadline
 * passed. What came stays in d->inst for the page. */
static void on_metadata(void *arg)
{
	struct daemon *d = arg;

	close_metadata(d);
	if (!vp_instance_known(&d->inst))
		vp_log_debug("metadata: nothing known of this instance; the page's header leaves it out");
}

/* Only on Compute Engine, or against agent.metadata_url (the tests' own
 * server): elsewhere nothing answers at 169.254.169.254. A failure leaves
 * the header without the instance, and is not worth stopping the agent. */
static void start_metadata(struct daemon *d)
{
	const char *url = d->cfg->metadata_url;

	if (!url && !vp_metadata_on_gce(VP_DMI_PRODUCT_NAME))
		return;
	d->meta_cm = vp_curlm_new(&d->loop);
	if (d->meta_cm && vp_metadata_start(&d->loop, d->meta_cm, url ? url : VP_METADATA_DEFAULT_URL,
	                                    &d->inst, on_metadata, d, &d->md) == 0)
		return;
	vp_log_warning("metadata: cannot start the reading: out of memory; the page's header "
	               "leaves the instance out");
	d->md = NULL;
	close_metadata(d);
}

static void close_handle(uv_handle_t *h)
{
	if (!uv_is_closing(h))
		uv_close(h, NULL);
}

static void on_sched_closed(struct vp_scheduler *s, void *arg)
{
	struct daemon *d = arg;

	(void)s;
	close_handle((uv_handle_t *)&d->sig_hup);
	close_handle((uv_handle_t *)&d->sig_term);
	close_handle((uv_handle_t *)&d->sig_int);
	close_handle((uv_handle_t *)&d->watchdog);
	close_handle((uv_handle_t *)&d->grace);
	close_handle((uv_handle_t *)&d->status_timer);
	vp_status_stop(d->status);
}

static void on_grace(uv_timer_t *t)
{
	vp_log_warning("stop: handles still open after %d ms; exiting anyway", VP_STOP_GRACE_MS);
	uv_stop(t->loop);
}

static void stop(struct daemon *d, int signum)
{
	if (d->stopping)
		return;
	d->stopping = true;
	sd_notify(0, "STOPPING=1");
	vp_log_info("stopping on %s", strsignal(signum));
	uv_timer_start(&d->grace, on_grace, VP_STOP_GRACE_MS, 0);
	vp_scheduler_stop(d->sched, on_sched_closed, d);
	vp_listen_checks_stop(d->checks);
	close_metadata(d);
	vp_reporter_close(d->reporter, true);
	d->reporter = NULL;
}

/* Reads agent.gcloud_exports again for the running configuration's
 * targets. A broken file is no failure (status_fw_load.c logs it and the
 * page says "unknown"); out of memory keeps the lines of the last load. */
static void load_firewall(struct daemon *d)
{
	struct vp_status_fw *fw = NULL;

	if (!d->cfg->gcloud_exports[0]) {
		d->fw = vp_status_fw_free(d->fw);
		return;
	}
	if (vp_status_fw_load(d->cfg->gcloud_exports, d->cfg->targets, d->cfg->n_targets, &fw) < 0) {
		vp_log_err("gcloud exports '%s': out of memory; the page keeps the last firewall lines",
		           d->cfg->gcloud_exports);
		return;
	}
	vp_status_fw_free(d->fw);
	d->fw = fw;
	vp_log_info("gcloud exports '%s': %zu firewall line(s) for the page%s%s",
	            d->cfg->gcloud_exports, fw->n, fw->when[0] ? ", exports of " : "", fw->when);
}

static void on_signal(uv_signal_t *h, int signum)
{
	struct daemon *d = h->data;

	if (signum == SIGHUP && !d->stopping) {
		reload(d);
		load_firewall(d); /* the exports may have changed even when the config did not */
	} else if (signum != SIGHUP)
		stop(d, signum);
}

static void on_watchdog(uv_timer_t *t)
{
	(void)t;
	sd_notify(0, "WATCHDOG=1");
}

static int start_signals(struct daemon *d)
{
	uv_signal_t *hs[] = { &d->sig_hup, &d->sig_term, &d->sig_int };
	int sigs[] = { SIGHUP, SIGTERM, SIGINT };
	uint64_t usec = 0;

	for (size_t i = 0; i < 3; i++) {
		uv_signal_init(&d->loop, hs[i]);
		hs[i]->data = d;
		if (uv_signal_start(hs[i], on_signal, sigs[i]) < 0)
			return -EINVAL;
	}
	uv_timer_init(&d->loop, &d->watchdog);
	uv_timer_init(&d->loop, &d->grace);
	uv_timer_init(&d->loop, &d->status_timer);
	d->status_timer.data = d;
	uv_timer_start(&d->status_timer, on_status_timer, VP_STATUS_NOTIFY_MS, VP_STATUS_NOTIFY_MS);
	/* Ping at half the interval systemd expects. */
	if (sd_watchdog_enabled(0, &usec) > 0 && usec >= 2000)
		uv_timer_start(&d->watchdog, on_watchdog, 0, usec / 2000);
	return 0;
}

/* systemd sets JOURNAL_STREAM to "DEVICE:INODE" of the stream it gives a
 * service as stderr when that is the journal (systemd.exec(5)). A process
 * started from such a service inherits the variable with another stderr, so
 * it counts only when it names our stderr. */
static bool stderr_is_journal(void)
{
	const char *v = getenv("JOURNAL_STREAM");
	unsigned long long dev, ino;
	struct stat st;
	char extra;

	if (v == NULL || sscanf(v, "%llu:%llu%c", &dev, &ino, &extra) != 2)
		return false;
	if (fstat(STDERR_FILENO, &st) < 0)
		return false;
	return (unsigned long long)st.st_dev == dev && (unsigned long long)st.st_ino == ino;
}

static int parse_args(struct daemon *d, int argc, char **argv)
{
	static const struct option opts[] = {
		{ "config", required_argument, NULL, 'c' },
		{ "verbose", no_argument, NULL, 'v' },
		{ "help", no_argument, NULL, 'h' },
		{ 0 },
	};
	int c;

	while ((c = getopt_long(argc, argv, "c:vh", opts, NULL)) != -1) {
		switch (c) {
		case 'c':
			d->config_path = optarg;
			break;
		case 'v':
			vp_log_set_level(VP_LOG_DEBUG);
			break;
		case 'h':
			fputs(run_usage, stdout);
			return 1;
		default:
			fputs("Try 'vpcprobe run --help'.\n", stderr);
			return -EINVAL;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "vpcprobe run: unexpected argument '%s'\n", argv[optind]);
		return -EINVAL;
	}
	return 0;
}

/* The status endpoints read the scheduler through this at every request:
 * a SIGHUP replaces it. */
static struct vp_scheduler *current_scheduler(void *arg)
{
	struct daemon *d = arg;

	return d->sched;
}

static const struct vp_listen_checks *current_checks(void *arg)
{
	const struct daemon *d = arg;

	return d->checks;
}

static const struct vp_instance *current_instance(void *arg)
{
	const struct daemon *d = arg;

	return &d->inst;
}

static const struct vp_status_fw *current_firewall(void *arg)
{
	const struct daemon *d = arg;

	return d->fw;
}

/* The collector's side of the status page and of /metrics: the spool's and
 * the reporter's counts. */
static void status_delivery(void *arg, struct vp_status_delivery *out)
{
	const struct daemon *d = arg;

	out->known = d->reporter != NULL;
	out->ok = d->delivery.last_success_ms > 0 && d->delivery.last_error[0] == '\0';
	out->spooled_bytes = d->delivery.spooled_bytes;
	out->dropped_total = d->delivery.dropped;
	out->partial_total = vp_reporter_partial_total();
	/* rejected counts both; the reporter keeps the partialSuccess share. */
	out->set_aside_total = d->delivery.rejected >= out->partial_total ?
	                       d->delivery.rejected - out->partial_total : 0;
	out->corrupt_total = d->delivery.corrupt;
	out->torn_total = d->delivery.torn;
	snprintf(out->last_error, sizeof(out->last_error), "%s", d->delivery.last_error);
}

static int start_status(struct daemon *d)
{
	const struct vp_status_source src = { .scheduler = current_scheduler,
	                                      .delivery = status_delivery,
	                                      .checks = current_checks,
	                                      .instance = current_instance,
	                                      .firewall = current_firewall, .arg = d };
	char err[VP_ERR_MAX];
	int r;

	r = vp_status_start(&d->loop, d->cfg, &src, &d->status, err, sizeof(err));
	if (r < 0)
		vp_log_err("status endpoints: %s", err);
	return r;
}

int vp_cmd_run(int argc, char **argv)
{
	struct daemon d = { 0 };
	char err[VP_ERR_MAX];
	int r;

	r = parse_args(&d, argc, argv);
	if (r != 0)
		return r > 0 ? VP_EXIT_OK : VP_EXIT_USAGE;
	if (stderr_is_journal())
		vp_log_set_journal(1);
	if (vp_cli_load_config(d.config_path, &d.cfg) < 0)
		return VP_EXIT_USAGE;
	if (vp_status_check_config(d.cfg, err, sizeof(err)) < 0) {
		vp_log_err("%s", err);
		vp_config_free(d.cfg);
		return VP_EXIT_USAGE;
	}
	if (uv_loop_init(&d.loop) < 0) {
		vp_log_err("uv_loop_init failed");
		vp_config_free(d.cfg);
		return VP_EXIT_NOT_OK;
	}
	if (d.cfg->collector.url &&
	    vp_reporter_new(&d.loop, d.cfg, &d.delivery, &d.sched, &d.reporter, err,
	                    sizeof(err)) < 0) {
		vp_log_err("%s", err);
		vp_config_free(d.cfg);
		(void)uv_loop_close(&d.loop); /* nothing was started on it */
		return VP_EXIT_USAGE;
	}
	d.sched = vp_scheduler_new(&d.loop, d.cfg, on_result, &d);
	if (!d.sched || start_signals(&d) < 0) {
		vp_log_err("out of memory or signals unavailable at start");
		return VP_EXIT_NOT_OK;
	}
	/* Bound before READY=1 (issue 5): the page answers once systemd says so. */
	if (start_status(&d) < 0)
		return VP_EXIT_NOT_OK;
	d.checks = vp_listen_checks_new(&d.loop, on_beacon_arrival, &d);
	if (!d.checks)
		return VP_EXIT_NOT_OK;
	vp_listen_checks_on_result(d.checks, on_listen_result);
	if (vp_listen_checks_apply(d.checks, d.cfg) < 0)
		return VP_EXIT_NOT_OK;
	start_metadata(&d);
	load_firewall(&d);
	vp_scheduler_start(d.sched, NULL);
	vp_log_info("started: config '%s', %zu targets, agent '%s'", d.cfg->source,
	            d.cfg->n_targets, d.cfg->agent_name);
	sd_notify(0, "READY=1");
	notify_status(&d);

	uv_run(&d.loop, UV_RUN_DEFAULT);

	vp_listen_checks_free(d.checks);
	vp_status_free(d.status);
	vp_status_fw_free(d.fw);
	vp_scheduler_free(d.sched);
	vp_scheduler_free(d.old_sched);
	vp_config_free(d.cfg);
	vp_config_free(d.old_cfg);
	r = uv_loop_close(&d.loop);
	if (r < 0)
		vp_log_debug("uv_loop_close: %s (stopped by the grace timer)", uv_strerror(r));
	vp_log_info("stopped");
	return VP_EXIT_OK;
}
