/* The bounds of vpcprobe_probe_duration_seconds, one list for both views of
 * one agent: the status page's /metrics (agent/metrics.c, the status
 * library) and the OTLP metrics (agent/otlp_metrics.c, the core library).
 * A list rather than an array, so that each file's own static array has a
 * size the compiler knows and this header defines no object.
 *
 * Upper bounds in seconds: a loopback connect takes ~0.1 ms, a zonal VPC
 * round trip under 1 ms, a cross-region one tens of ms, and a probe that
 * times out ends at its deadline (seconds). */
#ifndef VP_DURATION_BUCKETS_H
#define VP_DURATION_BUCKETS_H

#define VP_DURATION_BOUNDS_S \
	0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10

#endif
