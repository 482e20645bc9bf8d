/* The configuration vpcprobe runs with when no file is given and
 * /etc/vpcprobe/vpcprobe.json does not exist: probe this host's PostgreSQL,
 * Redis and HTTP ports, inspect its listeners on the same ports, serve the
 * status page on loopback only, and report to no collector. The agent name
 * is left out so that it defaults to the host name. It goes through the same
 * loader as any file, so the tests check that it stays valid. */
#include "config/config.h"

const char vp_config_default_json[] =
	"{\n"
	"  \"agent\": { \"status_listen\": \"127.0.0.1:9464\" },\n"
	"  \"targets\": [\n"
	"    { \"name\": \"local-postgres\", \"url\": \"postgres://127.0.0.1:5432\" },\n"
	"    { \"name\": \"local-redis\", \"url\": \"redis://127.0.0.1:6379\" },\n"
	"    { \"name\": \"local-http\", \"url\": \"http://127.0.0.1:8080/\" }\n"
	"  ],\n"
	"  \"listeners\": [ { \"port\": 5432 }, { \"port\": 6379 }, { \"port\": 8080 } ],\n"
	"  \"collector\": null\n"
	"}\n";
