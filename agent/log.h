/* Logging to stderr. Library code (probes/, config/) does not log; the agent
 * logs each failure once. */
#ifndef VP_LOG_H
#define VP_LOG_H

enum vp_log_level {
	VP_LOG_ERR = 3,
	VP_LOG_WARNING = 4,
	VP_LOG_NOTICE = 5,
	VP_LOG_INFO = 6,
	VP_LOG_DEBUG = 7,
};

void vp_log_set_level(enum vp_log_level max);
/* With 'journal' set, lines carry journald's "<N>" priority prefix. */
void vp_log_set_journal(int journal);
void vp_log(enum vp_log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#define vp_log_err(...)     vp_log(VP_LOG_ERR, __VA_ARGS__)
#define vp_log_warning(...) vp_log(VP_LOG_WARNING, __VA_ARGS__)
#define vp_log_info(...)    vp_log(VP_LOG_INFO, __VA_ARGS__)
#define vp_log_debug(...)   vp_log(VP_LOG_DEBUG, __VA_ARGS__)

#endif
