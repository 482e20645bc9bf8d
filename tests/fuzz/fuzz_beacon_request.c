/* The beacon's request scanner (probes/beacon.h): the input is what a
 * client sent, arriving in reads of a size the first byte picks (1..16
 * bytes, or the cap lowered to 64 bytes when its top bit is set). The
 * resumable scan must decide exactly as one scan of the whole request,
 * and the answer must hold nothing of the request. */
#include <arpa/inet.h>

#include "probes/beacon.h"
#include "tests/fuzz/fuzz.h"

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	vp_fuzz_quiet();
	return 0;
}

static void check_answer(enum vp_beacon_req st, const char *agent)
{
	struct vp_beacon_arrival a = { .family = AF_INET, .source_port = 40000 };
	char buf[VP_BEACON_RESPONSE_MAX];
	int n;

	snprintf(a.source, sizeof(a.source), "198.18.5.10");
	n = vp_beacon_response(st, agent, &a, buf, sizeof(buf));
	VP_FUZZ_CHECK(n > 0 && (size_t)n < sizeof(buf));
	for (int i = 0; i < n; i++)
		VP_FUZZ_CHECK((buf[i] >= 0x20 && buf[i] < 0x7f) || buf[i] == '\r' || buf[i] == '\n');
	VP_FUZZ_CHECK(strncmp(buf, st == VP_BEACON_REQ_COMPLETE ? "HTTP/1.1 200 " :
	                      st == VP_BEACON_REQ_TOO_LONG ? "HTTP/1.1 431 " : "HTTP/1.1 400 ", 13) == 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct vp_beacon_scanner inc, whole;
	enum vp_beacon_req st_inc = VP_BEACON_REQ_MORE, st_whole;
	size_t step, cap, len;
	uint8_t *buf;
	char *agent;

	if (size == 0)
		return 0;
	step = (size_t)(data[0] & 15) + 1;
	cap = data[0] & 0x80 ? 64 : VP_BEACON_REQUEST_MAX;
	data++;
	size--;
	len = size < cap ? size : cap;
	buf = malloc(len ? len : 1);
	VP_FUZZ_CHECK(buf != NULL);
	memcpy(buf, data, len);

	vp_beacon_scan_init(&inc);
	for (size_t have = 0; have < len && st_inc == VP_BEACON_REQ_MORE;) {
		have = have + step < len ? have + step : len;
		st_inc = vp_beacon_scan(&inc, buf, have, cap);
		VP_FUZZ_CHECK(inc.pos <= have);
	}
	vp_beacon_scan_init(&whole);
	st_whole = vp_beacon_scan(&whole, buf, len, cap);
	VP_FUZZ_CHECK(st_inc == st_whole);
	/* Once decided, the answer stays. */
	VP_FUZZ_CHECK(vp_beacon_scan(&whole, buf, len, cap) == st_whole);
	if (len == cap)
		VP_FUZZ_CHECK(st_whole != VP_BEACON_REQ_MORE);

	/* The request is never in the answer; a hostile agent name (from a
	 * config) is made printable. */
	agent = vp_fuzz_str(buf, len < VP_NAME_MAX ? len : VP_NAME_MAX);
	VP_FUZZ_CHECK(agent != NULL);
	check_answer(st_whole, agent);
	free(agent);
	free(buf);
	return 0;
}
