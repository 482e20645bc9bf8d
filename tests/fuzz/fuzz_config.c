/* The config loader (config/config.h): any bytes as the JSON text. Every
 * path of validation runs, password_file included (vp_secret_read opens
 * regular files only, non-blocking, bounded, so a fuzzed path cannot hang
 * the harness). */
#include "config/config.h"
#include "tests/fuzz/fuzz.h"

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	vp_fuzz_quiet();
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char err[VP_ERR_MAX * VP_CONFIG_MAX_ERRORS];
	struct vp_config *cfg = NULL;
	char *json = vp_fuzz_str(data, size);
	int r;

	if (json == NULL)
		return 0;
	memset(err, 'x', sizeof(err));
	r = vp_config_load_string(json, "fuzz.json", &cfg, err, sizeof(err));
	if (r == 0) {
		VP_FUZZ_CHECK(cfg != NULL);
		VP_FUZZ_CHECK(cfg->n_targets <= VP_CONFIG_MAX_TARGETS);
		for (size_t i = 0; i < cfg->n_targets; i++) {
			const struct vp_target *t = &cfg->targets[i];

			VP_FUZZ_CHECK(t->name != NULL && strlen(t->name) <= VP_NAME_MAX);
			VP_FUZZ_CHECK(t->timeout_ms >= VP_TIMEOUT_MS_MIN && t->timeout_ms <= VP_TIMEOUT_MS_MAX);
			VP_FUZZ_CHECK(t->interval_s >= VP_INTERVAL_S_MIN && t->interval_s <= VP_INTERVAL_S_MAX);
			VP_FUZZ_CHECK(t->url.kind >= 0 && t->url.kind < VP_KIND_MAX);
			VP_FUZZ_CHECK(t->url.port != 0);
		}
	} else {
		/* '*ret' is set only on success; the message names what is wrong. */
		VP_FUZZ_CHECK(r < 0 && cfg == NULL);
		VP_FUZZ_CHECK(vp_fuzz_terminated(err, sizeof(err)) && err[0] != '\0');
	}
	vp_config_free(cfg);
	free(json);
	return 0;
}
