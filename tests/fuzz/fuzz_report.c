/* What the reporter reads (agent/reporter.h): a collector's answer to a
 * POST (vp_report_otlp_rejected(), at most VP_REPORT_ANSWER_MAX bytes, so
 * possibly cut), a record's "time" (vp_report_time_ns()), and a spooled
 * record turned into both body formats (vp_report_body()): a body is
 * always JSON, whatever a record held. */
#include <jansson.h>

#include "agent/reporter.h"
#include "tests/fuzz/fuzz.h"

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	vp_fuzz_quiet();
	return 0;
}

static void check_body(enum vp_collector_format format, const uint8_t *data, size_t size)
{
	struct vp_instance inst = { 0 };
	struct vp_report_ctx ctx = { .agent = "fuzz-agent", .format = format, .instance = &inst };
	struct vp_spool_record recs[2];
	struct vp_spool_batch b = { .id = 43, .recs = recs, .n = 2 };
	char *body;
	size_t len = 0;
	json_t *j;

	snprintf(inst.name, sizeof(inst.name), "vm-1");
	snprintf(inst.zone, sizeof(inst.zone), "europe-west1-b");
	recs[0] = (struct vp_spool_record){ .seq = 42, .data = (const char *)data, .len = (uint32_t)size };
	recs[1] = (struct vp_spool_record){ .seq = 43, .data = "{\"verdict\":\"ok\"}", .len = 16 };
	body = vp_report_body(&ctx, &b, &len);
	if (body == NULL)
		return;   /* out of memory only */
	VP_FUZZ_CHECK(strlen(body) == len);
	j = json_loadb(body, len, 0, NULL);
	VP_FUZZ_CHECK(j != NULL);
	json_decref(j);
	free(body);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char msg[VP_DETAIL_MAX];
	char *iso;

	if (size > VP_SPOOL_RECORD_MAX)
		return 0;
	(void)vp_report_otlp_rejected((const char *)data, size, msg, sizeof(msg));
	VP_FUZZ_CHECK(vp_fuzz_terminated(msg, sizeof(msg)));
	iso = vp_fuzz_str(data, size);
	VP_FUZZ_CHECK(iso != NULL);
	(void)vp_report_time_ns(iso);
	(void)vp_report_severity(iso);
	free(iso);
	check_body(VP_COLLECTOR_JSON, data, size);
	check_body(VP_COLLECTOR_OTLP, data, size);
	return 0;
}
