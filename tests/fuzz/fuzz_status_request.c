/* The status server's request path handling (agent/status_int.h): what
 * on_request() in agent/status.c does with a request before it builds an
 * answer. The input is four NUL-separated fields: the method, the path as
 * libmicrohttpd hands it over (already percent-decoded, so any byte but
 * NUL), the Authorization header and the "port" query argument. They go
 * through the token check and the router; a /target/NAME route renders
 * that target's page and an /api/v1/listeners route its JSON, against a
 * fixed scheduler and listener table. libmicrohttpd itself (the request
 * line and header parsing) is not ours and not fuzzed here. */
#include <errno.h>
#include <strings.h>

#include "agent/status_int.h"
#include "config/config.h"
#include "tests/fuzz/fuzz.h"

#define TOKEN "fuzz-token"

static const char config_json[] =
	"{\"agent\": {\"name\": \"fuzz <agent>\"},"
	" \"targets\": ["
	"  {\"name\": \"db\", \"url\": \"postgres://127.0.0.1:5432\"},"
	"  {\"name\": \"cache & <b>\", \"url\": \"redis://[::1]:6379\"},"
	"  {\"name\": \"api\", \"url\": \"http://127.0.0.1:8080/healthz\"}]}";

static const char proc_tcp[] =
	"  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n"
	"   0: 0100007F:1538 00000000:0000 0A 00000000:00000000 00:00000000 00000000   108        0 1001 1\n"
	"   1: 00000000:18EB 00000000:0000 0A 00000000:00000005 00:00000000 00000000     0        0 1002 1\n";

static uv_loop_t loop;
static struct vp_config *cfg;
static struct vp_scheduler *sched;
static struct vp_status status;
static unsigned char want[VP_STATUS_SHA256_LEN];

static struct vp_scheduler *source_scheduler(void *arg)
{
	(void)arg;
	return sched;
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	char err[VP_ERR_MAX];

	(void)argc;
	(void)argv;
	vp_fuzz_quiet();
	/* Set up once and never started: the pages read the targets, no
	 * handle ever runs. The loop stays alive for the process's life. */
	VP_FUZZ_CHECK(uv_loop_init(&loop) == 0);
	VP_FUZZ_CHECK(vp_config_load_string(config_json, "fuzz.json", &cfg, err, sizeof(err)) == 0);
	sched = vp_scheduler_new(&loop, cfg, NULL, NULL);
	VP_FUZZ_CHECK(sched != NULL);
	status.loop = &loop;
	status.src.scheduler = source_scheduler;
	status.started_ms = vp_status_realtime_ms();
	vp_listen_table_init(&status.listen);
	VP_FUZZ_CHECK(vp_listen_parse_proc(&status.listen, AF_INET, proc_tcp, strlen(proc_tcp)) == 2);
	vp_listen_table_sort(&status.listen);
	/* uv_now() stands still while the loop does not run: the table stays
	 * "just read" and vp_status_listeners_json() never reads this host's. */
	status.listen_valid = true;
	status.listen_at = uv_now(&loop);
	vp_status_sha256(TOKEN, strlen(TOKEN), want);
	return 0;
}

static void check_body(struct vp_buf *b)
{
	VP_FUZZ_CHECK(b->err == 0 || b->err == -ENOBUFS || b->err == -ENOMEM);
	VP_FUZZ_CHECK(b->len <= b->max);
	VP_FUZZ_CHECK(b->data == NULL || strlen(b->data) == b->len);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *method = vp_fuzz_field(&data, &size);
	char *path = vp_fuzz_field(&data, &size);
	char *auth = vp_fuzz_field(&data, &size);
	char *port = vp_fuzz_field(&data, &size);
	enum vp_route route = VP_ROUTE_INVALID;
	const char *rest = NULL;
	struct vp_buf b;
	unsigned code;
	int r;

	if (method == NULL || path == NULL || auth == NULL || port == NULL)
		goto out;
	if (vp_status_auth_ok(auth, want))
		VP_FUZZ_CHECK(strncasecmp(auth, "Bearer ", 7) == 0 || strncasecmp(auth, "Basic ", 6) == 0);
	(void)vp_status_auth_ok(NULL, want);
	code = vp_status_route(method, path, &route, &rest);
	VP_FUZZ_CHECK(code == 200 || code == 404 || code == 405);
	if (code != 200)
		goto out;
	VP_FUZZ_CHECK(route >= 0 && route < VP_ROUTE_MAX);
	vp_buf_init(&b, VP_STATUS_BODY_MAX);
	if (route == VP_ROUTE_TARGET) {
		VP_FUZZ_CHECK(rest != NULL && rest > path && rest <= path + strlen(path));
		r = vp_status_target_page(&status, rest, &b);
		VP_FUZZ_CHECK(r == 0 || r == -ENOENT);
		/* The name is only ever shown escaped: had it gone in raw, the
		 * not-found sentence would hold it between its tags. */
		if (r == -ENOENT && b.data != NULL && strpbrk(rest, "<>&\"'") != NULL) {
			size_t n = strlen(rest) + 32;
			char *raw = malloc(n);

			VP_FUZZ_CHECK(raw != NULL);
			snprintf(raw, n, "named <b>%s</b>", rest);
			VP_FUZZ_CHECK(strstr(b.data, raw) == NULL);
			free(raw);
		}
	} else if (route == VP_ROUTE_LISTENERS) {
		r = vp_status_listeners_json(&status, port[0] != '\0' ? port : NULL, &b);
		VP_FUZZ_CHECK(r == 0 || r == -EINVAL);
		VP_FUZZ_CHECK(b.data != NULL);
		VP_FUZZ_CHECK(strchr(b.data, '\n') == b.data + b.len - 1);
	}
	check_body(&b);
	vp_buf_done(&b);
out:
	free(method);
	free(path);
	free(auth);
	free(port);
	return 0;
}
