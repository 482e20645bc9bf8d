/* Unit tests for config/config.c: every message the loader can give, and the
 * configs that must load. JSON in the tables is written with single quotes
 * for legibility; json_of() turns them into double quotes before loading. */
#include <arpa/inet.h>
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "config/config.h"

#define L10 "abcdefghij"
#define L100 L10 L10 L10 L10 L10 L10 L10 L10 L10 L10
#define L1000 L100 L100 L100 L100 L100 L100 L100 L100 L100 L100
#define N_ELEMS(a) (int)(sizeof(a) / sizeof((a)[0]))
#define SRC "config 't.json': "

static char *json_of(const char *text)
{
	char *s = strdup(text);

	ck_assert_ptr_nonnull(s);
	for (char *p = s; *p != '\0'; p++)
		if (*p == '\'')
			*p = '"';
	return s;
}

static unsigned count_lines(const char *s)
{
	unsigned n = s[0] != '\0';

	for (; *s != '\0'; s++)
		n += *s == '\n';
	return n;
}

struct bad_case {
	const char *json;
	unsigned lines;          /* how many messages */
	const char *forbidden;   /* must not appear: a secret */
	const char *expect[3];   /* substrings of the messages */
};

static const struct bad_case bad_cases[] = {
	/* the document */
	{ "[]", 1, NULL, { SRC "expected an object at the top level, got an array" } },
	{ "{'colour': 1}", 1, NULL, { SRC "colour: unknown key (known: agent, defaults, targets, "
	  "listeners, beacons, collector)" } },
	{ "{\n  'agent': {\n    'name': 'x',\n  }\n}", 1, NULL,
	  { SRC "line 4, column 3: syntax error: string or '}' expected near '}'" } },
	{ "{'agent': {}, 'agent': {}}", 1, NULL, { SRC "line 1, column 21: duplicate object key "
	  "near '\"agent\"'; each key may appear only once per object" } },
	{ "{'agent': {'name': 'a', 'name': 'b'}}", 1, NULL,
	  { "line 1, column 30: duplicate object key" } },
	{ "", 1, NULL, { SRC "line 1, column 0: syntax error: '[' or '{' expected near end of file" } },
	{ "{} {}", 1, NULL, { "line 1, column 4: syntax error: end of file expected" } },
	{ "{'agent': {'name': 'a\\u0000b'}}", 1, NULL, { "syntax error: \\u0000 is not allowed" } },
	{ "{'defaults': {'interval_s': 1e999}}", 1, NULL, { "syntax error: real number overflow" } },
	{ "{'defaults': {'interval_s': 99999999999999999999}}", 1, NULL,
	  { "syntax error: too big integer" } },
	/* agent */
	{ "{'agent': []}", 1, NULL, { SRC "agent: expected an object, got an array" } },
	{ "{'agent': null}", 1, NULL, { "agent: expected an object, got null" } },
	{ "{'agent': {'colour': 'red'}}", 1, NULL, { SRC "agent.colour: unknown key (known: name, "
	  "status_listen, status_token_file, state_dir, dns_servers, max_in_flight, "
	  "metadata_url, gcloud_exports)" } },
	{ "{'agent': {'\\u0001x': 1}}", 1, NULL, { "agent.?x: unknown key" } },
	{ "{'agent': {'" L100 "': 1}}", 1, NULL, { "agent." L10 L10 L10 L10 L10 L10 "abcd...: unknown" } },
	{ "{'agent': {'name': 5}}", 1, NULL, { SRC "agent.name: expected a string, got an integer" } },
	{ "{'agent': {'name': ''}}", 1, NULL, { "agent.name: empty string; expected 1..128 bytes" } },
	{ "{'agent': {'name': '" L100 L10 L10 "123456789'}}", 1, NULL,
	  { "agent.name: 129 bytes, longer than 128" } },
	{ "{'agent': {'name': 'a\\u0007b'}}", 1, NULL, { "agent.name: control character at byte 1" } },
	{ "{'agent': {'name': 'ab\\n'}}", 1, NULL, { "agent.name: control character at byte 2" } },
	{ "{'agent': {'name': 'a\\u0085'}}", 1, NULL, { "agent.name: control character at byte 1" } },
	{ "{'agent': {'status_listen': true}}", 1, NULL,
	  { "agent.status_listen: expected a string, got true" } },
	{ "{'agent': {'status_listen': 'localhost:9464'}}", 1, NULL, { SRC "agent.status_listen: "
	  "'localhost:9464': 'localhost' is not an IP address" } },
	{ "{'agent': {'status_listen': '127.0.0.1'}}", 1, NULL,
	  { "agent.status_listen: '127.0.0.1': no port" } },
	{ "{'agent': {'status_listen': '[::1]:99999'}}", 1, NULL, { "port 99999 not in 1..65535" } },
	{ "{'agent': {'status_listen': '::1:9464'}}", 1, NULL, { "an IPv6 address needs brackets" } },
	{ "{'agent': {'status_token_file': 5}}", 1, NULL,
	  { "agent.status_token_file: expected a string or null, got an integer" } },
	{ "{'agent': {'status_token_file': ''}}", 1, NULL,
	  { "agent.status_token_file: empty string; expected 1..4095 bytes" } },
	{ "{'agent': {'state_dir': null}}", 1, NULL, { "agent.state_dir: expected a string, got null" } },
	{ "{'agent': {'dns_servers': '8.8.8.8'}}", 1, NULL,
	  { "agent.dns_servers: expected an array, got a string" } },
	{ "{'agent': {'dns_servers': [1]}}", 1, NULL,
	  { "agent.dns_servers[0]: expected a string, got an integer" } },
	{ "{'agent': {'dns_servers': ['127.0.0.53', 'dns.google']}}", 1, NULL,
	  { "agent.dns_servers[1]: 'dns.google': 'dns.google' is not an IP address" } },
	{ "{'agent': {'dns_servers': ['127.0.0.1:0']}}", 1, NULL,
	  { "agent.dns_servers[0]: '127.0.0.1:0': port 0 not in 1..65535" } },
	{ "{'agent': {'dns_servers': ['1.1.1.1','1.1.1.2','1.1.1.3','1.1.1.4','1.1.1.5',"
	  "'1.1.1.6','1.1.1.7','1.1.1.8','1.1.1.9']}}", 1, NULL,
	  { "agent.dns_servers: 9 entries, more than the limit of 8" } },
	{ "{'agent': {'max_in_flight': 0}}", 1, NULL, { "agent.max_in_flight: 0 not in 1..1000000" } },
	{ "{'agent': {'max_in_flight': 1000001}}", 1, NULL, { "1000001 not in 1..1000000" } },
	{ "{'agent': {'max_in_flight': 1.5}}", 1, NULL,
	  { "agent.max_in_flight: expected an integer, got a real number" } },
	{ "{'agent': {'max_in_flight': '10'}}", 1, NULL, { "expected an integer, got a string" } },
	{ "{'agent': {'metadata_url': 5}}", 1, NULL,
	  { SRC "agent.metadata_url: expected a string, got an integer" } },
	{ "{'agent': {'metadata_url': 'https://169.254.169.254'}}", 1, NULL,
	  { SRC "agent.metadata_url: 'https://169.254.169.254': the metadata server is reached "
	  "over http://" } },
	{ "{'agent': {'metadata_url': 'tcp://127.0.0.1:80'}}", 1, NULL,
	  { "agent.metadata_url: 'tcp://127.0.0.1:80': the metadata server is reached over http://" } },
	{ "{'agent': {'metadata_url': 'http://'}}", 1, NULL,
	  { "agent.metadata_url: 'http://': missing host" } },
	{ "{'agent': {'max_in_flight': false}}", 1, NULL, { "expected an integer, got false" } },
	{ "{'agent': {'gcloud_exports': 5}}", 1, NULL,
	  { SRC "agent.gcloud_exports: expected a string, got an integer" } },
	{ "{'agent': {'gcloud_exports': ''}}", 1, NULL, { "agent.gcloud_exports: empty string" } },
	{ "{'agent': {'gcloud_exports': 'exports'}}", 1, NULL,
	  { SRC "agent.gcloud_exports: 'exports' is not an absolute path" } },
	/* defaults */
	{ "{'defaults': []}", 1, NULL, { "defaults: expected an object, got an array" } },
	{ "{'defaults': {'interval': 10}}", 1, NULL,
	  { "defaults.interval: unknown key (known: interval_s, timeout_ms)" } },
	{ "{'defaults': {'interval_s': 0}}", 1, NULL, { SRC "defaults.interval_s: 0 not in 1..86400" } },
	{ "{'defaults': {'interval_s': 86401}}", 1, NULL, { "defaults.interval_s: 86401 not in 1..86400" } },
	{ "{'defaults': {'interval_s': 9999999999999}}", 1, NULL, { "9999999999999 not in 1..86400" } },
	{ "{'defaults': {'timeout_ms': 0}}", 1, NULL, { "defaults.timeout_ms: 0 not in 1..600000" } },
	{ "{'defaults': {'timeout_ms': -1}}", 1, NULL, { "defaults.timeout_ms: -1 not in 1..600000" } },
	{ "{'defaults': {'timeout_ms': 600001}}", 1, NULL, { "600001 not in 1..600000" } },
	{ "{'defaults': {'interval_s': 1, 'timeout_ms': 2000}}", 1, NULL, { SRC "defaults.timeout_ms: "
	  "2000 ms is longer than the interval of 1 s; timeout_ms must be at most "
	  "interval_s*1000" } },
	{ "{'defaults': {'interval_s': 1}}", 1, NULL, { "defaults.timeout_ms: 2000 ms is longer" } },
	/* targets */
	{ "{'targets': {}}", 1, NULL, { "targets: expected an array, got an object" } },
	{ "{'targets': [1]}", 1, NULL, { "targets[0]: expected an object, got an integer" } },
	{ "{'targets': [{}]}", 2, NULL, { SRC "targets[0].name: required key is missing",
	  SRC "targets[0].url: required key is missing" } },
	{ "{'targets': [{'name': 'a', 'url': 'tcp://h:1', 'port': 1}]}", 1, NULL,
	  { "targets[0].port: unknown key (known: name, url, interval_s, timeout_ms, "
	    "password_file, user, database, username, tls" } },
	{ "{'targets': [{'name': 7, 'url': 'tcp://h:1'}]}", 1, NULL,
	  { "targets[0].name: expected a string, got an integer" } },
	{ "{'targets': [{'name': '', 'url': 'tcp://h:1'}]}", 1, NULL,
	  { "targets[0].name: empty string; expected 1..128 bytes" } },
	{ "{'targets': [{'name': '" L100 L10 L10 L10 "', 'url': 'tcp://h:1'}]}", 1, NULL,
	  { "targets[0].name: 130 bytes, longer than 128" } },
	{ "{'targets': [{'name': 'a\\tb', 'url': 'tcp://h:1'}]}", 1, NULL,
	  { "targets[0].name: control character at byte 1" } },
	{ "{'targets': [{'name': 'db', 'url': 'tcp://h:1'}, {'name': 'x', 'url': 'tcp://h:2'},"
	  " {'name': 'db', 'url': 'tcp://h:3'}]}", 1, NULL, { SRC "targets[2].name: 'db' is also the "
	  "name of targets[0]; names must be unique" } },
	{ "{'targets': [{'name': 'b', 'url': 'tcp://h:1'}, {'name': 'a', 'url': 'tcp://h:2'},"
	  " {'name': 'b', 'url': 'tcp://h:3'}, {'name': 'a', 'url': 'tcp://h:4'},"
	  " {'name': 'b', 'url': 'tcp://h:5'}]}", 3, NULL,
	  { "targets[3].name: 'a' is also the name of targets[1]",
	    "targets[2].name: 'b' is also the name of targets[0]",
	    "targets[4].name: 'b' is also the name of targets[0]" } },
	{ "{'targets': [{'name': 'a', 'url': 5}]}", 1, NULL,
	  { "targets[0].url: expected a string, got an integer" } },
	{ "{'targets': [{'name': 'a', 'url': 'tcp://10.0.0.1'}]}", 1, NULL, { SRC "targets[0].url: "
	  "'tcp://10.0.0.1': tcp:// needs a port, as in tcp://HOST:PORT" } },
	{ "{'targets': [{'name': 'a', 'url': 'tcp://10.0.0.1:70000'}]}", 1, NULL,
	  { "targets[0].url: 'tcp://10.0.0.1:70000': port 70000 not in 1..65535" } },
	{ "{'targets': [{'name': 'a', 'url': ''}]}", 1, NULL, { "targets[0].url: empty URL" } },
	{ "{'targets': [{'name': 'a', 'url': 'mysql://db'}]}", 1, NULL, { "unknown scheme 'mysql'" } },
	{ "{'targets': [{'name': 'a', 'url': 'redis://:hunter2@10.0.0.4'}]}", 1, "hunter2",
	  { "targets[0].url: 'redis://***@10.0.0.4': credentials are not accepted in URLs" } },
	{ "{'targets': [{'name': 'a', 'url': 'tcp://h:1'}, {'name': 'b', 'url': 'tcp://h:1'},"
	  " {'name': 'c', 'url': 'tcp://h:1'}, {'name': 'd', 'url': 'tcp://h:1', 'timeout_ms': 0}]}",
	  1, NULL, { SRC "targets[3].timeout_ms: 0 not in 1..600000" } },
	{ "{'targets': [{'name': 'a', 'url': 'tcp://h:1', 'interval_s': 0}]}", 1, NULL,
	  { "targets[0].interval_s: 0 not in 1..86400" } },
	{ "{'targets': [{'name': 'a', 'url': 'tcp://h:1', 'interval_s': '5'}]}", 1, NULL,
	  { "targets[0].interval_s: expected an integer, got a string" } },
	{ "{'targets': [{'name': 'a', 'url': 'tcp://h:1', 'interval_s': 1, 'timeout_ms': 1500}]}",
	  1, NULL, { "targets[0].timeout_ms: 1500 ms is longer than the interval of 1 s; timeout_ms "
	  "must be at most interval_s*1000" } },
	{ "{'defaults': {'timeout_ms': 5000}, 'targets': [{'name': 'a', 'url': 'tcp://h:1',"
	  " 'interval_s': 2}, {'name': 'b', 'url': 'tcp://h:1'}]}", 1, NULL,
	  { "targets[0].timeout_ms: 5000 ms is longer than the interval of 2 s" } },
	{ "{'targets': [{'name': 'a', 'url': 'tcp://h:1', 'timeout_ms': 20000}]}", 1, NULL,
	  { "targets[0].timeout_ms: 20000 ms is longer than the interval of 10 s" } },
	/* connector_range (issue 6): a connector's IPv4 /28, or a wider egress subnet */
	{ "{'targets': [{'name': 'a', 'url': 'tcp://h:1', 'connector_range': 5}]}", 1, NULL,
	  { SRC "targets[0].connector_range: expected a string, got an integer" } },
	{ "{'targets': [{'name': 'a', 'url': 'tcp://h:1', 'connector_range': ''}]}", 1, NULL,
	  { "targets[0].connector_range: empty string" } },
	{ "{'targets': [{'name': 'a', 'url': 'tcp://h:1', 'connector_range': '10.8.0.0/29'}]}", 1,
	  NULL, { SRC "targets[0].connector_range: '10.8.0.0/29': expected the IPv4 range of a "
	  "Serverless VPC Access connector (a /28, such as 10.8.0.0/28) or of a Direct VPC egress "
	  "subnet (/8../28)" } },
	{ "{'targets': [{'name': 'a', 'url': 'tcp://h:1', 'connector_range': '10.8.0.1'}]}", 1, NULL,
	  { "targets[0].connector_range: '10.8.0.1': expected the IPv4 range" } },
	{ "{'targets': [{'name': 'a', 'url': 'tcp://h:1', 'connector_range': '10.0.0.0/7'}]}", 1, NULL,
	  { "targets[0].connector_range: '10.0.0.0/7': expected the IPv4 range" } },
	{ "{'targets': [{'name': 'a', 'url': 'tcp://h:1', 'connector_range': 'fd00:198:18::/64'}]}",
	  1, NULL, { "targets[0].connector_range: 'fd00:198:18::/64': expected the IPv4 range" } },
	{ "{'targets': [{'name': 'a', 'url': 'tcp://h:1', 'connector_range': '10.8.0.5/28'}]}", 1,
	  NULL, { "targets[0].connector_range: '10.8.0.5/28': host bits are set below /28; the "
	  "network is 10.8.0.0/28" } },
	{ "{'targets': [{'name': 'a', 'url': 'tcp://h:1', 'connector_range': 'connector-1'}]}", 1,
	  NULL, { "targets[0].connector_range: 'connector-1': 'connector-1' is not an IPv4" } },
	{ "{'targets': [{'name': 'a', 'url': 'redis://h', 'password_file': 1}]}", 1, NULL,
	  { "targets[0].password_file: expected a string, got an integer" } },
	{ "{'targets': [{'name': 'a', 'url': 'redis://h', 'password_file': ''}]}", 1, NULL,
	  { "targets[0].password_file: empty string" } },
	{ "{'targets': [{'name': 'a', 'url': 'redis://h', 'password_file': '/nonexistent/vp.pw'}]}",
	  1, NULL, { SRC "targets[0].password_file: cannot read '/nonexistent/vp.pw': No such file "
	  "or directory" } },
	{ "{'targets': [{'name': 'a', 'url': 'postgres://h', 'password_file': '/'}]}", 1, NULL,
	  { "targets[0].password_file: cannot read '/': Is a directory" } },
	{ "{'targets': [{'name': 'a', 'url': 'postgres://h', 'password_file': '/dev/null'}]}", 1,
	  NULL, { "targets[0].password_file: '/dev/null' is not a regular file" } },
	{ "{'targets': [{'name': 'a', 'url': 'tcp://h:1', 'password_file': '/nonexistent/p'}]}", 2,
	  NULL, { "targets[0].password_file: cannot read '/nonexistent/p'",
	  "targets[0].password_file: applies to postgres://, redis://, rediss:// targets only, not "
	  "to tcp://" } },
	{ "{'targets': [{'name': 'a', 'url': 'https://h/', 'password_file': '/nonexistent/p'}]}", 2,
	  NULL, { "password_file: applies to postgres://, redis://, rediss:// targets only, not to "
	  "https://" } },
	/* postgres: user, database, tls */
	{ "{'targets': [{'name': 'a', 'url': 'postgres://h', 'user': 5}]}", 1, NULL,
	  { SRC "targets[0].user: expected a string, got an integer" } },
	{ "{'targets': [{'name': 'a', 'url': 'postgres://h', 'user': ''}]}", 1, NULL,
	  { "targets[0].user: empty string; expected 1..63 bytes" } },
	{ "{'targets': [{'name': 'a', 'url': 'postgres://h', 'user': '" L10 L10 L10 L10 L10 L10
	  "abcd'}]}", 1, NULL, { "targets[0].user: 64 bytes, longer than 63" } },
	{ "{'targets': [{'name': 'a', 'url': 'postgres://h', 'user': 'a\\u001bb'}]}", 1, NULL,
	  { "targets[0].user: control character at byte 1" } },
	{ "{'targets': [{'name': 'a', 'url': 'redis://h', 'user': 'probe'}]}", 1, NULL,
	  { SRC "targets[0].user: applies to postgres:// targets only, not to redis://" } },
	{ "{'targets': [{'name': 'a', 'url': 'postgres://h', 'database': []}]}", 1, NULL,
	  { "targets[0].database: expected a string, got an array" } },
	{ "{'targets': [{'name': 'a', 'url': 'postgres://h', 'database': null}]}", 1, NULL,
	  { "targets[0].database: expected a string, got null" } },
	{ "{'targets': [{'name': 'a', 'url': 'tcp://h:5432', 'database': 'orders'}]}", 1, NULL,
	  { "targets[0].database: applies to postgres:// targets only, not to tcp://" } },
	{ "{'targets': [{'name': 'a', 'url': 'postgres://h', 'tls': 'verify-ca'}]}", 1, NULL,
	  { SRC "targets[0].tls: 'verify-ca' is not a tls mode; expected \"disable\", "
	  "\"prefer\", \"require\" or \"verify-full\"" } },
	{ "{'targets': [{'name': 'a', 'url': 'postgres://h', 'tls': 'PREFER'}]}", 1, NULL,
	  { "targets[0].tls: 'PREFER' is not a tls mode" } },
	{ "{'targets': [{'name': 'a', 'url': 'postgres://h', 'tls': ''}]}", 1, NULL,
	  { "targets[0].tls: '' is not a tls mode" } },
	{ "{'targets': [{'name': 'a', 'url': 'postgres://h', 'tls': true}]}", 1, NULL,
	  { "targets[0].tls: expected a string, got true" } },
	{ "{'targets': [{'name': 'a', 'url': 'postgres://h', 'tls': 'a\\u0007'}]}", 1, NULL,
	  { "targets[0].tls: control character at byte 1" } },
	{ "{'targets': [{'name': 'a', 'url': 'redis://h', 'tls': 'require'}]}", 1, NULL,
	  { "targets[0].tls: applies to postgres:// targets only, not to redis://" } },
	{ "{'targets': [{'name': 'a', 'url': 'rediss://h', 'tls': 'disable'}]}", 1, NULL,
	  { "targets[0].tls: applies to postgres:// targets only, not to rediss://" } },
	/* ca_file (postgres, rediss, https: one key); what the file holds is test_ca_file's */
	{ "{'targets': [{'name': 'a', 'url': 'rediss://h', 'ca_file': 5}]}", 1, NULL,
	  { SRC "targets[0].ca_file: expected a string, got an integer" } },
	{ "{'targets': [{'name': 'a', 'url': 'rediss://h', 'ca_file': ''}]}", 1, NULL,
	  { "targets[0].ca_file: empty string; expected 1..4095 bytes" } },
	{ "{'targets': [{'name': 'a', 'url': 'rediss://h', 'ca_file': null}]}", 1, NULL,
	  { "targets[0].ca_file: expected a string, got null" } },
	{ "{'targets': [{'name': 'a', 'url': 'rediss://h', 'ca_file': '/ca\\u001b.pem'}]}", 1, NULL,
	  { "targets[0].ca_file: control character at byte 3" } },
	{ "{'targets': [{'name': 'a', 'url': 'rediss://h', 'ca_file': '/nonexistent/ca.pem'}]}", 1,
	  NULL, { SRC "targets[0].ca_file: cannot read '/nonexistent/ca.pem': No such file or "
	  "directory" } },
	{ "{'targets': [{'name': 'a', 'url': 'postgres://h', 'ca_file': '/'}]}", 1, NULL,
	  { "targets[0].ca_file: '/' is not a regular file" } },
	{ "{'targets': [{'name': 'a', 'url': 'redis://h', 'ca_file': '/nonexistent/ca.pem'}]}", 2,
	  NULL, { "targets[0].ca_file: cannot read", "targets[0].ca_file: applies to postgres://, "
	  "rediss://, https:// targets only, not to redis://" } },
	{ "{'targets': [{'name': 'a', 'url': 'tcp://h:1', 'ca_file': '/nonexistent/ca.pem'}]}", 2,
	  NULL, { "targets[0].ca_file: applies to postgres://, rediss://, https:// targets only, "
	  "not to tcp://" } },
	/* redis: username */
	{ "{'targets': [{'name': 'a', 'url': 'redis://h', 'username': 1}]}", 1, NULL,
	  { "targets[0].username: expected a string, got an integer" } },
	{ "{'targets': [{'name': 'a', 'url': 'redis://h', 'username': '" L100 L10 L10 L10
	  "'}]}", 1, NULL, { "targets[0].username: 130 bytes, longer than 128" } },
	{ "{'targets': [{'name': 'a', 'url': 'postgres://h', 'username': 'probe'}]}", 1, NULL,
	  { "targets[0].username: applies to redis://, rediss:// targets only, not to postgres://" } },
	{ "{'targets': [{'name': 'a', 'url': 'tcp://h:1', 'user': 'u', 'username': 'u', "
	  "'tls': 'disable'}]}", 3, NULL, { "targets[0].user: applies", "targets[0].username: "
	  "applies", "targets[0].tls: applies" } },
	/* http(s): expect_status, host_header, ca_file (issue 4) */
	{ "{'targets': [{'name': 'a', 'url': 'http://h/', 'expect_status': 200}]}", 1, NULL,
	  { SRC "targets[0].expect_status: expected a string, got an integer" } },
	{ "{'targets': [{'name': 'a', 'url': 'http://h/', 'expect_status': ''}]}", 1, NULL,
	  { "targets[0].expect_status: empty string; expected 1..128 bytes" } },
	{ "{'targets': [{'name': 'a', 'url': 'http://h/', 'expect_status': 'abc'}]}", 1, NULL,
	  { SRC "targets[0].expect_status: 'abc': expected status codes and ranges such as "
	  "\"200-399\", \"200,204\" or \"200-299,404\"" } },
	{ "{'targets': [{'name': 'a', 'url': 'http://h/', 'expect_status': '200-'}]}", 1, NULL,
	  { "targets[0].expect_status: '200-': expected status codes and ranges" } },
	{ "{'targets': [{'name': 'a', 'url': 'http://h/', 'expect_status': '2000'}]}", 1, NULL,
	  { "targets[0].expect_status: '2000': expected status codes and ranges" } },
	{ "{'targets': [{'name': 'a', 'url': 'http://h/', 'expect_status': '200,,204'}]}", 1, NULL,
	  { "targets[0].expect_status: '200,,204': expected status codes and ranges" } },
	{ "{'targets': [{'name': 'a', 'url': 'http://h/', 'expect_status': '200,'}]}", 1, NULL,
	  { "targets[0].expect_status: '200,': expected status codes and ranges" } },
	{ "{'targets': [{'name': 'a', 'url': 'http://h/', 'expect_status': '200 - 399'}]}", 1, NULL,
	  { "targets[0].expect_status: '200 - 399': expected status codes and ranges" } },
	{ "{'targets': [{'name': 'a', 'url': 'http://h/', 'expect_status': '600'}]}", 1, NULL,
	  { SRC "targets[0].expect_status: '600': a status code is 100..599" } },
	{ "{'targets': [{'name': 'a', 'url': 'http://h/', 'expect_status': '200-099'}]}", 1, NULL,
	  { "targets[0].expect_status: '200-099': a status code is 100..599" } },
	{ "{'targets': [{'name': 'a', 'url': 'http://h/', 'expect_status': '399-200'}]}", 1, NULL,
	  { SRC "targets[0].expect_status: '399-200': the range 399-200 is reversed" } },
	{ "{'targets': [{'name': 'a', 'url': 'http://h/', 'expect_status': '200,201,202,203,204,"
	  "205,206,207,208,209,210,211,212,213,214,215,216'}]}", 1, NULL,
	  { "targets[0].expect_status: '200,201,202,203,204,205,206,207,208,209,210,211,212,213,"
	  "214,215,216': more than 16 codes and ranges" } },
	{ "{'targets': [{'name': 'a', 'url': 'tcp://h:80', 'expect_status': '200'}]}", 1, NULL,
	  { SRC "targets[0].expect_status: applies to http://, https:// targets only, not to "
	  "tcp://" } },
	{ "{'targets': [{'name': 'a', 'url': 'http://h/', 'host_header': 'a b'}]}", 1, NULL,
	  { SRC "targets[0].host_header: 'a b': expected a host name and an optional port, as in "
	  "\"api.internal\" or \"api.internal:8080\"" } },
	{ "{'targets': [{'name': 'a', 'url': 'http://h/', 'host_header': 'a/b'}]}", 1, NULL,
	  { "targets[0].host_header: 'a/b': expected a host name" } },
	{ "{'targets': [{'name': 'a', 'url': 'http://h/', 'host_header': 'x\\r\\nEvil: 1'}]}", 1,
	  NULL, { "targets[0].host_header: control character at byte 1" } },
	{ "{'targets': [{'name': 'a', 'url': 'http://h/', 'host_header': ''}]}", 1, NULL,
	  { "targets[0].host_header: empty string; expected 1..255 bytes" } },
	{ "{'targets': [{'name': 'a', 'url': 'https://h/', 'host_header': []}]}", 1, NULL,
	  { "targets[0].host_header: expected a string, got an array" } },
	{ "{'targets': [{'name': 'a', 'url': 'redis://h', 'host_header': 'h'}]}", 1, NULL,
	  { "targets[0].host_header: applies to http://, https:// targets only, not to redis://" } },
	{ "{'targets': [{'name': 'a', 'url': 'https://h/', 'ca_file': '/nonexistent/ca.pem'}]}", 1,
	  NULL, { SRC "targets[0].ca_file: cannot read '/nonexistent/ca.pem': No such file or "
	  "directory" } },
	{ "{'targets': [{'name': 'a', 'url': 'https://h/', 'ca_file': '/'}]}", 1, NULL,
	  { "targets[0].ca_file: '/' is not a regular file; expected PEM certificates" } },
	{ "{'targets': [{'name': 'a', 'url': 'https://h/', 'ca_file': 5}]}", 1, NULL,
	  { "targets[0].ca_file: expected a string, got an integer" } },
	{ "{'targets': [{'name': 'a', 'url': 'https://h/', 'ca_file': ''}]}", 1, NULL,
	  { "targets[0].ca_file: empty string" } },
	{ "{'targets': [{'name': 'a', 'url': 'http://h/', 'ca_file': '/'}]}", 2, NULL,
	  { "targets[0].ca_file: '/' is not a regular file", "targets[0].ca_file: applies to "
	  "postgres://, rediss://, https:// targets only, not to http://" } },
	{ "{'targets': [{'name': 'a', 'url': 'tcp://h:1', 'colour': 1}]}", 1, NULL,
	  { "targets[0].colour: unknown key (known: name, url, interval_s, timeout_ms, "
	    "password_file, user, database, username, tls, connector_range, expect_status, "
	    "host_header, ca_file, agent_url, agent_token_file)" } },
	/* listeners */
	{ "{'listeners': {}}", 1, NULL, { "listeners: expected an array, got an object" } },
	{ "{'listeners': [5432]}", 1, NULL, { "listeners[0]: expected an object, got an integer" } },
	{ "{'listeners': [{}]}", 1, NULL, { "listeners[0].port: required key is missing" } },
	{ "{'listeners': [{'port': 80}, {'port': 0}]}", 1, NULL, { "listeners[1].port: 0 not in 1..65535" } },
	{ "{'listeners': [{'port': 65536}]}", 1, NULL, { "listeners[0].port: 65536 not in 1..65535" } },
	{ "{'listeners': [{'port': '80'}]}", 1, NULL,
	  { "listeners[0].port: expected an integer, got a string" } },
	{ "{'listeners': [{'port': 80, 'host': 'x'}]}", 1, NULL,
	  { "listeners[0].host: unknown key (known: port)" } },
	/* beacons */
	{ "{'beacons': {}}", 1, NULL, { "beacons: expected an array, got an object" } },
	{ "{'beacons': ['0.0.0.0:1']}", 1, NULL, { "beacons[0]: expected an object, got a string" } },
	{ "{'beacons': [{}]}", 1, NULL, { "beacons[0].listen: required key is missing" } },
	{ "{'beacons': [{'listen': 18080}]}", 1, NULL,
	  { "beacons[0].listen: expected a string, got an integer" } },
	{ "{'beacons': [{'listen': '0.0.0.0'}]}", 1, NULL, { "beacons[0].listen: '0.0.0.0': no port" } },
	{ "{'beacons': [{'listen': '0.0.0.0:1', 'port': 1}]}", 1, NULL,
	  { "beacons[0].port: unknown key (known: listen, expect_from)" } },
	{ "{'beacons': [{'listen': '0.0.0.0:1', 'expect_from': '10.8.0.0/28'}]}", 1, NULL,
	  { "beacons[0].expect_from: expected an array, got a string" } },
	{ "{'beacons': [{'listen': '0.0.0.0:1', 'expect_from': [8]}]}", 1, NULL,
	  { "beacons[0].expect_from[0]: expected a string, got an integer" } },
	{ "{'beacons': [{'listen': '0.0.0.0:1', 'expect_from': ['10.8.0.0/33']}]}", 1, NULL,
	  { "beacons[0].expect_from[0]: '10.8.0.0/33': prefix length /33 not in 0..32" } },
	{ "{'beacons': [{'listen': '0.0.0.0:1', 'expect_from': ['10.8.0.0/28', '10.8.0.1/28']}]}",
	  1, NULL, { SRC "beacons[0].expect_from[1]: '10.8.0.1/28': host bits are set below /28; the "
	  "network is 10.8.0.0/28" } },
	{ "{'beacons': [{'listen': '[::]:1', 'expect_from': ['fd00:198:18::1/48']}]}", 1, NULL,
	  { "the network is fd00:198:18::/48" } },
	{ "{'beacons': [{'listen': '[::]:1', 'expect_from': ['not-a-cidr']}]}", 1, NULL,
	  { "'not-a-cidr' is not an IPv4 or IPv6 address" } },
	{ "{'beacons': [{'listen': '[::]:1', 'expect_from': ['10.8.0.0/']}]}", 1, NULL,
	  { "empty prefix length after '/'" } },
	/* collector */
	{ "{'collector': 'https://c/'}", 1, NULL, { "collector: expected an object or null, got a string" } },
	{ "{'collector': {}}", 1, NULL, { SRC "collector.url: required key is missing" } },
	{ "{'collector': {'url': 5}}", 1, NULL, { "collector.url: expected a string, got an integer" } },
	{ "{'collector': {'url': 'tcp://c:4318'}}", 1, NULL, { SRC "collector.url: 'tcp://c:4318': the "
	  "collector needs an http:// or https:// URL" } },
	{ "{'collector': {'url': 'redis://c'}}", 1, NULL, { "needs an http:// or https:// URL" } },
	{ "{'collector': {'url': 'https://'}}", 1, NULL, { "collector.url: 'https://': missing host" } },
	{ "{'collector': {'url': 'https://c/', 'format': 'xml'}}", 1, NULL,
	  { "collector.format: 'xml' is not a format; expected \"json\" or \"otlp\"" } },
	{ "{'collector': {'url': 'https://c/', 'format': 'JSON'}}", 1, NULL, { "'JSON' is not a format" } },
	{ "{'collector': {'url': 'https://c/', 'format': 'a\\u0001'}}", 1, NULL,
	  { "collector.format: control character at byte 1" } },
	{ "{'collector': {'url': 'https://c/', 'format': 1}}", 1, NULL,
	  { "collector.format: expected a string, got an integer" } },
	{ "{'collector': {'url': 'https://c/', 'token_file': ''}}", 1, NULL,
	  { "collector.token_file: empty string" } },
	{ "{'collector': {'url': 'https://c/', 'spool_max_mb': 0}}", 1, NULL,
	  { "collector.spool_max_mb: 0 not in 1..65536" } },
	{ "{'collector': {'url': 'https://c/', 'spool_max_mb': 65537}}", 1, NULL,
	  { "65537 not in 1..65536" } },
	{ "{'collector': {'url': 'https://c/', 'batch': 10}}", 1, NULL,
	  { "collector.batch: unknown key (known: url, format, token_file, spool_max_mb, ca_file, "
	  "batch_max, timeout_ms)" } },
	{ "{'collector': {'url': 'https://c/', 'ca_file': ''}}", 1, NULL,
	  { SRC "collector.ca_file: empty string; expected 1..4095 bytes" } },
	{ "{'collector': {'url': 'https://c/', 'ca_file': null}}", 1, NULL,
	  { "collector.ca_file: expected a string, got null" } },
	{ "{'collector': {'url': 'https://c/', 'ca_file': 'a\\u0001'}}", 1, NULL,
	  { "collector.ca_file: control character at byte 1" } },
	{ "{'collector': {'url': 'https://c/', 'batch_max': 0}}", 1, NULL,
	  { SRC "collector.batch_max: 0 not in 1..10000" } },
	{ "{'collector': {'url': 'https://c/', 'batch_max': 10001}}", 1, NULL,
	  { "collector.batch_max: 10001 not in 1..10000" } },
	{ "{'collector': {'url': 'https://c/', 'batch_max': '5'}}", 1, NULL,
	  { "collector.batch_max: expected an integer, got a string" } },
	{ "{'collector': {'url': 'https://c/', 'timeout_ms': 99}}", 1, NULL,
	  { SRC "collector.timeout_ms: 99 not in 100..600000" } },
	{ "{'collector': {'url': 'https://c/', 'timeout_ms': 600001}}", 1, NULL,
	  { "collector.timeout_ms: 600001 not in 100..600000" } },
	{ "{'collector': {'url': 'https://c/', 'timeout_ms': 1.5}}", 1, NULL,
	  { "collector.timeout_ms: expected an integer, got a real number" } },
	/* several at once: all of them, in one go */
	{ "{'agent': {'colour': 'red'}, 'defaults': {'timeout_ms': 0},\n"
	  " 'targets': [{'name': 'a', 'url': 'ftp://x'}], 'collector': {'url': 'tcp://c:1'}}", 4, NULL,
	  { "agent.colour: unknown key", "defaults.timeout_ms: 0 not in 1..600000",
	    "targets[0].url: 'ftp://x': unknown scheme 'ftp'" } },
	{ "{'listeners': [{'port':0},{'port':0},{'port':0},{'port':0},{'port':0},{'port':0},"
	  "{'port':0},{'port':0},{'port':0},{'port':0},{'port':0},{'port':0},{'port':0},"
	  "{'port':0},{'port':0},{'port':0},{'port':0},{'port':0},{'port':0},{'port':0}]}",
	  VP_CONFIG_MAX_ERRORS + 1, NULL, { "listeners[15].port: 0 not in 1..65535",
	  SRC "4 more errors not shown" } },
};

START_TEST(test_bad_config)
{
	const struct bad_case *c = &bad_cases[_i];
	struct vp_config *cfg = NULL;
	char err[8192];
	char *json = json_of(c->json);
	int r;

	r = vp_config_load_string(json, "t.json", &cfg, err, sizeof(err));
	ck_assert_msg(r == -EINVAL, "row %d: expected -EINVAL, got %d for %s", _i, r, json);
	ck_assert_ptr_null(cfg);
	ck_assert_msg(count_lines(err) == c->lines, "row %d: expected %u messages, got:\n%s",
	              _i, c->lines, err);
	for (int j = 0; j < N_ELEMS(c->expect) && c->expect[j] != NULL; j++)
		ck_assert_msg(strstr(err, c->expect[j]) != NULL, "row %d: messages\n%s\nlack '%s'",
		              _i, err, c->expect[j]);
	ck_assert_msg(c->forbidden == NULL || strstr(err, c->forbidden) == NULL,
	              "row %d: messages show a secret:\n%s", _i, err);
	ck_assert_msg(err[strlen(err) - 1] != '\n', "row %d: trailing newline", _i);
	free(json);
}
END_TEST

/* Inputs too large to write out: HEAD, then COUNT times ELEM joined by SEP,
 * then TAIL. Arrays and strings just past their limits, and right at them. */
struct size_case {
	const char *head;
	const char *elem;
	const char *sep;
	const char *tail;
	size_t count;
	const char *error;   /* NULL: must load */
};

#define PATH_MAX_LEN (PATH_MAX - 1)

static const struct size_case size_cases[] = {
	{ "{'agent': {'state_dir': '", "d", "", "'}}", PATH_MAX_LEN + 1,
	  "agent.state_dir: 4096 bytes, longer than 4095" },
	{ "{'agent': {'state_dir': '", "d", "", "'}}", PATH_MAX_LEN, NULL },
	{ "{'agent': {'status_token_file': '", "d", "", "'}}", PATH_MAX_LEN + 1,
	  "agent.status_token_file: 4096 bytes, longer than 4095" },
	{ "{'targets': [{'name': 'a', 'url': 'redis://h', 'password_file': '", "d", "", "'}]}",
	  PATH_MAX_LEN + 1, "targets[0].password_file: 4096 bytes, longer than 4095" },
	{ "{'collector': {'url': 'http://c/', 'token_file': '", "d", "", "'}}", PATH_MAX_LEN + 1,
	  "collector.token_file: 4096 bytes, longer than 4095" },
	{ "{'targets': [{'name': 'a', 'url': 'http://h/", "d", "", "'}]}", VP_URL_MAX,
	  "targets[0].url: URL is longer than 2047 bytes" },
	{ "{'targets': [{'name': 'a', 'url': 'http://h/", "d", "", "'}]}", VP_PATH_MAX,
	  "targets[0].url: 'http://h/dddd" },
	{ "{'targets': [{'name': 'a', 'url': 'http://h/", "d", "", "'}]}", VP_PATH_MAX,
	  "path is 1025 bytes, longer than 1023" },
	{ "{'targets': [{'name': 'a', 'url': 'http://h/", "d", "", "'}]}", VP_PATH_MAX - 2, NULL },
	{ "{'targets': [", "0", ",", "]}", VP_CONFIG_MAX_TARGETS + 1,
	  "targets: 100001 entries, more than the limit of 100000" },
	{ "{'listeners': [", "{'port': 1}", ",", "]}", VP_CONFIG_MAX_LISTENERS + 1,
	  "listeners: 1025 entries, more than the limit of 1024" },
	{ "{'listeners': [", "{'port': 1}", ",", "]}", VP_CONFIG_MAX_LISTENERS, NULL },
	{ "{'beacons': [", "{'listen': '0.0.0.0:1'}", ",", "]}", VP_CONFIG_MAX_BEACONS + 1,
	  "beacons: 65 entries, more than the limit of 64" },
	{ "{'beacons': [", "{'listen': '0.0.0.0:1'}", ",", "]}", VP_CONFIG_MAX_BEACONS, NULL },
	{ "{'beacons': [{'listen': '0.0.0.0:1', 'expect_from': [", "'10.0.0.0/8'", ",", "]}]}",
	  VP_CONFIG_MAX_CIDRS + 1, "beacons[0].expect_from: 1025 entries, more than the limit of 1024" },
	{ "{'beacons': [{'listen': '0.0.0.0:1', 'expect_from': [", "'10.0.0.0/8'", ",", "]}]}",
	  VP_CONFIG_MAX_CIDRS, NULL },
	{ "{'agent': {'dns_servers': [", "'127.0.0.1'", ",", "]}}", VP_CONFIG_MAX_DNS_SERVERS, NULL },
};

START_TEST(test_array_limits)
{
	const struct size_case *c = &size_cases[_i];
	size_t elen = strlen(c->elem) + strlen(c->sep);
	size_t len = strlen(c->head) + c->count * elen + strlen(c->tail) + 1;
	char *text = malloc(len);
	struct vp_config *cfg = NULL;
	char err[4096];
	char *json;
	size_t used;
	int r;

	ck_assert_ptr_nonnull(text);
	used = (size_t)snprintf(text, len, "%s", c->head);
	for (size_t i = 0; i < c->count; i++)
		used += (size_t)snprintf(text + used, len - used, "%s%s", i > 0 ? c->sep : "", c->elem);
	snprintf(text + used, len - used, "%s", c->tail);
	json = json_of(text);
	r = vp_config_load_string(json, "t.json", &cfg, err, sizeof(err));
	if (c->error == NULL) {
		ck_assert_msg(r == 0, "row %d: %s", _i, err);
		ck_assert_ptr_nonnull(cfg);
	} else {
		ck_assert_int_eq(r, -EINVAL);
		ck_assert_msg(strstr(err, c->error) != NULL, "row %d: '%s' lacks '%s'", _i, err,
		              c->error);
		ck_assert_uint_eq(count_lines(err), 1);
	}
	vp_config_free(cfg);
	free(json);
	free(text);
}
END_TEST

/* Configs that must load, with one fact about each. */
struct good_case {
	const char *json;
	size_t n_targets;
	uint32_t interval_s;    /* of the last target, or of the defaults */
	uint32_t timeout_ms;
};

static const struct good_case good_cases[] = {
	{ "{}", 0, VP_INTERVAL_S_DEFAULT, VP_TIMEOUT_MS_DEFAULT },
	{ "{'targets': [], 'listeners': [], 'beacons': [], 'collector': null}", 0, 10, 2000 },
	{ "{'agent': {'status_token_file': null, 'dns_servers': []}}", 0, 10, 2000 },
	/* targets inherit the defaults whatever the order of the keys */
	{ "{'targets': [{'name': 'a', 'url': 'tcp://h:1'}], 'defaults': {'interval_s': 60,"
	  " 'timeout_ms': 60000}}", 1, 60, 60000 },
	{ "{'targets': [{'name': 'a', 'url': 'tcp://h:1', 'interval_s': 3}]}", 1, 3, 2000 },
	{ "{'targets': [{'name': 'a', 'url': 'tcp://h:1', 'timeout_ms': 10000}]}", 1, 10, 10000 },
	{ "{'targets': [{'name': 'a', 'url': 'tcp://h:1', 'interval_s': 1, 'timeout_ms': 1000}]}",
	  1, 1, 1000 },
	/* names are compared exactly: case and spaces make them different */
	{ "{'targets': [{'name': 'db', 'url': 'tcp://h:1'}, {'name': 'DB', 'url': 'tcp://h:1'},"
	  " {'name': 'db ', 'url': 'tcp://h:1'}, {'name': 'caf\\u00e9', 'url': 'tcp://h:1'}]}",
	  4, 10, 2000 },
	/* the connector's /28, and a Direct VPC egress subnet */
	{ "{'targets': [{'name': 'a', 'url': 'postgres://10.20.0.3', 'connector_range': '10.8.0.0/28'},"
	  " {'name': 'b', 'url': 'tcp://h:1', 'connector_range': '10.128.0.0/20'}]}", 2, 10, 2000 },
	/* host names are valid here; resolving them is the probe's job */
	{ "{'targets': [{'name': 'a', 'url': 'https://api.internal/healthz'}]}", 1, 10, 2000 },
	{ "{'agent': {'status_listen': '[::1]:9464', 'dns_servers': ['127.0.0.53',"
	  " '[::1]:5353', 'fd00:198:18::53']}}", 0, 10, 2000 },
	{ "{'collector': {'url': 'http://127.0.0.1:4318/v1/logs'}}", 0, 10, 2000 },
	{ "{'beacons': [{'listen': '127.0.0.1:18080'}]}", 0, 10, 2000 },
	{ " \n\t{ } \n", 0, 10, 2000 },
};

START_TEST(test_good_config)
{
	const struct good_case *c = &good_cases[_i];
	struct vp_config *cfg = NULL;
	char err[4096] = "";
	char *json = json_of(c->json);
	int r;

	r = vp_config_load_string(json, "t.json", &cfg, err, sizeof(err));
	ck_assert_msg(r == 0, "row %d: %s", _i, err);
	ck_assert_str_eq(err, "");
	ck_assert_uint_eq(cfg->n_targets, c->n_targets);
	if (c->n_targets > 0) {
		ck_assert_uint_eq(cfg->targets[c->n_targets - 1].interval_s, c->interval_s);
		ck_assert_uint_eq(cfg->targets[c->n_targets - 1].timeout_ms, c->timeout_ms);
	} else {
		ck_assert_uint_eq(cfg->interval_s, c->interval_s);
		ck_assert_uint_eq(cfg->timeout_ms, c->timeout_ms);
	}
	ck_assert_str_eq(cfg->source, "t.json");
	vp_config_free(cfg);
	free(json);
}
END_TEST

/* The delivery settings (issue 5): defaults and what a file sets. */
struct delivery_case {
	const char *json;
	const char *ca_file;       /* NULL: not set */
	uint32_t batch_max;
	uint32_t timeout_ms;
	const char *metadata_url;  /* NULL: not set */
};

static const struct delivery_case delivery_cases[] = {
	{ "{'collector': {'url': 'http://127.0.0.1:4318/v1/logs'}}", NULL,
	  VP_REPORT_BATCH_DEFAULT, VP_REPORT_TIMEOUT_MS_DEFAULT, NULL },
	{ "{'collector': {'url': 'https://c/v1/logs', 'ca_file': '/etc/vpcprobe/ca.pem', "
	  "'batch_max': 1, 'timeout_ms': 100}}", "/etc/vpcprobe/ca.pem", 1, 100, NULL },
	{ "{'collector': {'url': 'https://c/', 'batch_max': 10000, 'timeout_ms': 600000}}", NULL,
	  10000, 600000, NULL },
	{ "{'agent': {'metadata_url': 'http://127.0.0.1:8999'}}", NULL, VP_REPORT_BATCH_DEFAULT,
	  VP_REPORT_TIMEOUT_MS_DEFAULT, "http://127.0.0.1:8999" },
	{ "{'agent': {'metadata_url': null}}", NULL, VP_REPORT_BATCH_DEFAULT,
	  VP_REPORT_TIMEOUT_MS_DEFAULT, NULL },
	{ "{'agent': {'metadata_url': 'http://metadata.google.internal/'}}", NULL,
	  VP_REPORT_BATCH_DEFAULT, VP_REPORT_TIMEOUT_MS_DEFAULT, "http://metadata.google.internal/" },
};

START_TEST(test_delivery_settings)
{
	const struct delivery_case *c = &delivery_cases[_i];
	struct vp_config *cfg = NULL;
	char err[4096] = "";
	char *json = json_of(c->json);

	ck_assert_msg(vp_config_load_string(json, "t.json", &cfg, err, sizeof(err)) == 0,
	              "row %d: %s", _i, err);
	if (c->ca_file)
		ck_assert_str_eq(cfg->collector.ca_file, c->ca_file);
	else
		ck_assert_ptr_null(cfg->collector.ca_file);
	ck_assert_uint_eq(cfg->collector.batch_max, c->batch_max);
	ck_assert_uint_eq(cfg->collector.timeout_ms, c->timeout_ms);
	if (c->metadata_url)
		ck_assert_str_eq(cfg->metadata_url, c->metadata_url);
	else
		ck_assert_ptr_null(cfg->metadata_url);
	vp_config_free(cfg);
	free(json);
}
END_TEST

/* agent.gcloud_exports (the status page's firewall line): "" unless set. */
struct exports_case {
	const char *json;
	const char *want;
};

static const struct exports_case exports_cases[] = {
	{ "{}", "" },
	{ "{'agent': {'gcloud_exports': null}}", "" },
	{ "{'agent': {'gcloud_exports': '/var/lib/vpcprobe/exports'}}", "/var/lib/vpcprobe/exports" },
};

START_TEST(test_gcloud_exports)
{
	const struct exports_case *c = &exports_cases[_i];
	struct vp_config *cfg = NULL;
	char err[4096] = "";
	char *json = json_of(c->json);

	ck_assert_msg(vp_config_load_string(json, "t.json", &cfg, err, sizeof(err)) == 0,
	              "row %d: %s", _i, err);
	ck_assert_str_eq(cfg->gcloud_exports, c->want);
	vp_config_free(cfg);
	free(json);
}
END_TEST

static void check_target(const struct vp_target *t, const char *name, enum vp_kind kind,
                         const char *host, uint16_t port, uint32_t interval_s)
{
	ck_assert_str_eq(t->name, name);
	ck_assert_int_eq(t->url.kind, kind);
	ck_assert_str_eq(t->url.host, host);
	ck_assert_uint_eq(t->url.port, port);
	ck_assert_uint_eq(t->interval_s, interval_s);
}

START_TEST(test_embedded_default)
{
	struct vp_config *cfg = NULL;
	char err[4096] = "";
	char host[VP_NAME_MAX + 1] = "";
	int r;

	r = vp_config_load_string(vp_config_default_json, VP_CONFIG_EMBEDDED_NAME, &cfg, err,
	                          sizeof(err));
	ck_assert_msg(r == 0, "%s", err);
	ck_assert_str_eq(cfg->source, "(embedded default)");
	ck_assert_int_eq(gethostname(host, sizeof(host) - 1), 0);
	ck_assert_str_eq(cfg->agent_name, host);
	ck_assert_str_eq(cfg->status_listen, "127.0.0.1:9464");
	ck_assert_ptr_null(cfg->status_token_file);
	ck_assert_str_eq(cfg->state_dir, "/var/lib/vpcprobe");
	ck_assert_uint_eq(cfg->n_dns_servers, 0);
	ck_assert_uint_eq(cfg->max_in_flight, VP_IN_FLIGHT_DEFAULT);
	ck_assert_uint_eq(cfg->n_targets, 3);
	check_target(&cfg->targets[0], "local-postgres", VP_KIND_POSTGRES, "127.0.0.1", 5432, 10);
	check_target(&cfg->targets[1], "local-redis", VP_KIND_REDIS, "127.0.0.1", 6379, 10);
	check_target(&cfg->targets[2], "local-http", VP_KIND_HTTP, "127.0.0.1", 8080, 10);
	ck_assert_str_eq(cfg->targets[2].url.path, "/");
	ck_assert_str_eq(cfg->targets[0].url_text, "postgres://127.0.0.1:5432");
	ck_assert_uint_eq(cfg->targets[0].timeout_ms, 2000);
	ck_assert_uint_eq(cfg->n_listeners, 3);
	ck_assert_uint_eq(cfg->listeners[0].port, 5432);
	ck_assert_uint_eq(cfg->listeners[1].port, 6379);
	ck_assert_uint_eq(cfg->listeners[2].port, 8080);
	ck_assert_uint_eq(cfg->n_beacons, 0);
	ck_assert_ptr_null(cfg->collector.url);
	ck_assert_ptr_null(vp_config_free(cfg));
}
END_TEST

/* The example from DESIGN.md, field by field. */
static const char design_example[] =
	"{\n"
	"  'agent':     { 'name': 'diag-vm-1', 'status_listen': '127.0.0.1:9464',\n"
	"                 'status_token_file': null, 'state_dir': '/var/lib/vpcprobe',\n"
	"                 'dns_servers': [] },\n"
	"  'defaults':  { 'interval_s': 10, 'timeout_ms': 2000 },\n"
	"  'targets': [\n"
	"    { 'name': 'orders-db', 'url': 'postgres://10.20.0.3:5432' },\n"
	"    { 'name': 'cache',     'url': 'redis://10.20.0.4:6379', 'password_file': "
	"'/etc/vpcprobe/redis.pw' },\n"
	"    { 'name': 'api-vm',    'url': 'http://api-vm.internal:8080/healthz', 'interval_s': 5 }\n"
	"  ],\n"
	"  'listeners': [ { 'port': 8080 }, { 'port': 5432 } ],\n"
	"  'beacons':   [ { 'listen': '0.0.0.0:18080', 'expect_from': ['10.8.0.0/28'] } ],\n"
	"  'collector': { 'url': 'https://collector.internal:4318/v1/logs', 'format': 'otlp',\n"
	"                 'token_file': '/etc/vpcprobe/collector.token',\n"
	"                 'spool_max_mb': 64 }\n"
	"}\n";

static void check_design_beacons_collector(const struct vp_config *cfg)
{
	char net[INET6_ADDRSTRLEN];

	ck_assert_uint_eq(cfg->n_beacons, 1);
	ck_assert_str_eq(cfg->beacons[0].listen, "0.0.0.0:18080");
	ck_assert_uint_eq(cfg->beacons[0].n_expect_from, 1);
	ck_assert_int_eq(cfg->beacons[0].expect_from[0].family, AF_INET);
	ck_assert_uint_eq(cfg->beacons[0].expect_from[0].prefix, 28);
	ck_assert_str_eq(cfg->beacons[0].expect_from[0].text, "10.8.0.0/28");
	inet_ntop(AF_INET, cfg->beacons[0].expect_from[0].addr, net, sizeof(net));
	ck_assert_str_eq(net, "10.8.0.0");
	ck_assert_str_eq(cfg->collector.url, "https://collector.internal:4318/v1/logs");
	ck_assert_int_eq(cfg->collector.format, VP_COLLECTOR_OTLP);
	ck_assert_str_eq(cfg->collector.token_file, "/etc/vpcprobe/collector.token");
	ck_assert_uint_eq(cfg->collector.spool_max_mb, 64);
}

/* Example configs name password files under /etc/vpcprobe/, which the
 * loader reads. A scratch directory stands in: every "/etc/vpcprobe/X.pw"
 * in 'text' is made as DIR/X.pw holding "pw-X.pw" and a newline, and the
 * returned copy names that instead. */
#define SECRETS_MAX 8

struct secrets {
	char dir[32];
	char files[SECRETS_MAX][PATH_MAX];
	int n;
};

static char *relocate_secrets(const char *text, struct secrets *sec)
{
	static const char prefix[] = "/etc/vpcprobe/";
	size_t cap = strlen(text) * 2 + 4096;
	char *out = malloc(cap);
	size_t used = 0;
	const char *p = text;
	const char *hit;

	snprintf(sec->dir, sizeof(sec->dir), "/tmp/vp-test-secrets-XXXXXX");
	ck_assert_ptr_nonnull(mkdtemp(sec->dir));
	ck_assert_ptr_nonnull(out);
	while ((hit = strstr(p, prefix)) != NULL) {
		const char *name = hit + sizeof(prefix) - 1;
		size_t len = strcspn(name, "'\"");
		FILE *f;

		/* Passwords, and the tokens of peer agents (agent_token_file,
		 * "...agent.token"): the loader reads both. */
		if ((len < 3 || strncmp(name + len - 3, ".pw", 3) != 0) &&
		    (len < 11 || strncmp(name + len - 11, "agent.token", 11) != 0)) {
			used += (size_t)snprintf(out + used, cap - used, "%.*s", (int)(name - p), p);
			p = name;
			continue;
		}
		ck_assert_int_lt(sec->n, SECRETS_MAX);
		char file[PATH_MAX];

		snprintf(file, sizeof(file), "%s/%.*s", sec->dir, (int)len, name);
		memcpy(sec->files[sec->n], file, sizeof(file));
		f = fopen(sec->files[sec->n], "w");
		ck_assert_ptr_nonnull(f);
		fprintf(f, "pw-%.*s\n", (int)len, name);
		ck_assert_int_eq(fclose(f), 0);
		used += (size_t)snprintf(out + used, cap - used, "%.*s%s", (int)(hit - p), p,
		                         sec->files[sec->n++]);
		p = name + len;
	}
	snprintf(out + used, cap - used, "%s", p);
	return out;
}

static void remove_secrets(const struct secrets *sec)
{
	for (int i = 0; i < sec->n; i++)
		ck_assert_int_eq(unlink(sec->files[i]), 0);
	ck_assert_int_eq(rmdir(sec->dir), 0);
}

START_TEST(test_design_example)
{
	struct vp_config *cfg = NULL;
	struct secrets sec = { .n = 0 };
	char err[4096] = "";
	char *quoted = json_of(design_example);
	char *json = relocate_secrets(quoted, &sec);

	ck_assert_msg(vp_config_load_string(json, "design.json", &cfg, err, sizeof(err)) == 0,
	              "%s", err);
	ck_assert_str_eq(cfg->agent_name, "diag-vm-1");
	ck_assert_str_eq(cfg->status_listen, "127.0.0.1:9464");
	ck_assert_ptr_null(cfg->status_token_file);
	ck_assert_str_eq(cfg->state_dir, "/var/lib/vpcprobe");
	ck_assert_uint_eq(cfg->n_dns_servers, 0);
	ck_assert_uint_eq(cfg->interval_s, 10);
	ck_assert_uint_eq(cfg->timeout_ms, 2000);
	ck_assert_uint_eq(cfg->n_targets, 3);
	check_target(&cfg->targets[0], "orders-db", VP_KIND_POSTGRES, "10.20.0.3", 5432, 10);
	check_target(&cfg->targets[1], "cache", VP_KIND_REDIS, "10.20.0.4", 6379, 10);
	check_target(&cfg->targets[2], "api-vm", VP_KIND_HTTP, "api-vm.internal", 8080, 5);
	ck_assert_int_eq(cfg->targets[2].url.host_type, VP_HOST_NAME);
	ck_assert_str_eq(cfg->targets[2].url.path, "/healthz");
	ck_assert_str_eq(cfg->targets[2].url_text, "http://api-vm.internal:8080/healthz");
	ck_assert_uint_eq(cfg->targets[2].timeout_ms, 2000);
	ck_assert_ptr_null(cfg->targets[0].password_file);
	ck_assert_str_eq(cfg->targets[1].password_file, sec.files[0]);
	ck_assert_str_eq(cfg->targets[1].password, "pw-redis.pw");
	ck_assert_uint_eq(cfg->targets[1].password_len, 11);
	ck_assert_ptr_null(cfg->targets[0].password);
	ck_assert_int_eq(cfg->targets[0].tls, VP_TLS_PREFER);
	ck_assert_ptr_null(cfg->targets[0].user);
	ck_assert_uint_eq(cfg->n_listeners, 2);
	ck_assert_uint_eq(cfg->listeners[0].port, 8080);
	ck_assert_uint_eq(cfg->listeners[1].port, 5432);
	check_design_beacons_collector(cfg);
	vp_config_free(cfg);
	remove_secrets(&sec);
	free(json);
	free(quoted);
}
END_TEST

/* meson gives no SOURCE_ROOT to unit tests, and __FILE__ is relative to the
 * build directory ("../tests/test_config.c"), which is the parent of this
 * executable's directory; so try that after the working directory. */
static bool find_example(char *out, size_t outlen)
{
	static const char rel[] = "/config/example.json";
	const char *root = getenv("SOURCE_ROOT");
	char src[PATH_MAX];
	char exe[PATH_MAX];
	ssize_t n;

	if (root != NULL && root[0] != '\0') {
		snprintf(out, outlen, "%s%s", root, rel);
		return access(out, R_OK) == 0;
	}
	snprintf(src, sizeof(src), "%s", __FILE__);
	snprintf(out, outlen, "%s%s", dirname(dirname(src)), rel);
	if (access(out, R_OK) == 0 || out[0] == '/')
		return access(out, R_OK) == 0;
	n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
	if (n <= 0)
		return false;
	exe[n] = '\0';
	snprintf(src, sizeof(src), "%s", __FILE__);
	snprintf(out, outlen, "%s/%s%s", dirname(dirname(exe)), dirname(dirname(src)), rel);
	return access(out, R_OK) == 0;
}

static char *read_text(const char *path)
{
	FILE *f = fopen(path, "r");
	char *buf = calloc(1, VP_CONFIG_MAX_BYTES + 1);

	ck_assert_ptr_nonnull(f);
	ck_assert_ptr_nonnull(buf);
	(void)fread(buf, 1, VP_CONFIG_MAX_BYTES, f); /* a short read shows as a load error */
	fclose(f);
	return buf;
}

/* The example loads once its password files exist; until then each one is
 * an error that names the file, since the loader reads them. */
START_TEST(test_example_file)
{
	struct vp_config *cfg = NULL;
	struct secrets sec = { .n = 0 };
	char path[PATH_MAX];
	char copy[PATH_MAX + 64];
	char err[4096] = "";
	char *text, *json;
	FILE *f;
	int r;

	ck_assert_msg(find_example(path, sizeof(path)), "cannot find config/example.json "
	              "(tried %s); set SOURCE_ROOT", path);
	if (access("/etc/vpcprobe", F_OK) != 0) {
		r = vp_config_load_file(path, &cfg, err, sizeof(err));
		ck_assert_int_eq(r, -EINVAL);
		ck_assert_msg(strstr(err, ".password_file: cannot read '/etc/vpcprobe/") != NULL, "%s",
		              err);
	}
	text = read_text(path);
	json = relocate_secrets(text, &sec);
	snprintf(copy, sizeof(copy), "%s/example.json", sec.dir);
	f = fopen(copy, "w");
	ck_assert_ptr_nonnull(f);
	ck_assert_int_eq(fputs(json, f) >= 0, 1);
	ck_assert_int_eq(fclose(f), 0);
	r = vp_config_load_file(copy, &cfg, err, sizeof(err));
	ck_assert_msg(r == 0, "%s", err);
	ck_assert_str_eq(cfg->source, copy);
	ck_assert_uint_ge(cfg->n_targets, 6);
	ck_assert_uint_ge(cfg->n_listeners, 1);
	ck_assert_uint_ge(cfg->n_beacons, 1);
	ck_assert_ptr_nonnull(cfg->collector.url);
	ck_assert_int_ge(sec.n, 2);
	for (size_t i = 0; i < cfg->n_targets; i++) {
		ck_assert_uint_le(cfg->targets[i].timeout_ms, cfg->targets[i].interval_s * 1000);
		ck_assert((cfg->targets[i].password != NULL) == (cfg->targets[i].password_file != NULL));
		if (cfg->targets[i].password != NULL)
			ck_assert_int_eq(strncmp(cfg->targets[i].password, "pw-", 3), 0);
		ck_assert((cfg->targets[i].agent_token != NULL) ==
		          (cfg->targets[i].agent_token_file != NULL));
	}
	vp_config_free(cfg);
	ck_assert_int_eq(unlink(copy), 0);
	remove_secrets(&sec);
	free(json);
	free(text);
}
END_TEST

/* A password file's content: what the target gets, or what the loader says.
 * The content itself never appears in a message. */
struct password_case {
	const char *content;
	size_t len;               /* 0: strlen */
	size_t repeat;            /* > 0: 'content' is one byte, repeated */
	const char *password;     /* NULL: must fail */
	size_t password_len;
	const char *error;        /* after "targets[0].password_file: " */
};

static const struct password_case password_cases[] = {
	{ "Zq9-secret\n", 0, 0, "Zq9-secret", 10, NULL },
	{ "Zq9-secret", 0, 0, "Zq9-secret", 10, NULL },
	{ "Zq9-secret\r\n", 0, 0, "Zq9-secret", 10, NULL },
	{ "Zq9-secret\n\n", 0, 0, "Zq9-secret\n", 11, NULL },        /* one newline only */
	{ " Zq9 spaced\t\n", 0, 0, " Zq9 spaced\t", 12, NULL },
	{ "Zq9\xff\xfe\x01\n", 0, 0, "Zq9\xff\xfe\x01", 6, NULL }, /* bytes, not text */
	{ "x", 0, VP_PASSWORD_MAX, "", VP_PASSWORD_MAX, NULL },
	{ "\n", 0, 0, NULL, 0, "is empty; it must hold the password" },
	{ "\r\n", 0, 0, NULL, 0, "is empty" },
	{ "", 0, 0, NULL, 0, "is empty" },
	{ "Zq9\0Zq9\n", 8, 0, NULL, 0, "holds a NUL byte, which no password can" },
	{ "x", 0, VP_PASSWORD_MAX + 1, NULL, 0, "is more than 1024 bytes, the limit for a password" },
	{ "x", 0, 100000, NULL, 0, "is more than 1024 bytes" },
};

START_TEST(test_password_file)
{
	const struct password_case *c = &password_cases[_i];
	char dir[] = "/tmp/vp-test-pw-XXXXXX";
	char file[PATH_MAX];
	char json[PATH_MAX + 128];
	char err[4096] = "";
	struct vp_config *cfg = NULL;
	FILE *f;
	int r;

	ck_assert_ptr_nonnull(mkdtemp(dir));
	snprintf(file, sizeof(file), "%s/p.pw", dir);
	f = fopen(file, "w");
	ck_assert_ptr_nonnull(f);
	if (c->repeat > 0)
		for (size_t i = 0; i < c->repeat; i++)
			fputc(c->content[0], f);
	else
		fwrite(c->content, 1, c->len ? c->len : strlen(c->content), f);
	ck_assert_int_eq(fclose(f), 0);
	snprintf(json, sizeof(json), "{\"targets\": [{\"name\": \"a\", \"url\": \"postgres://h\", "
	         "\"password_file\": \"%s\"}]}", file);
	r = vp_config_load_string(json, "t.json", &cfg, err, sizeof(err));
	if (c->error == NULL) {
		ck_assert_msg(r == 0, "row %d: %s", _i, err);
		ck_assert_uint_eq(cfg->targets[0].password_len, c->password_len);
		if (c->repeat == 0)
			ck_assert_mem_eq(cfg->targets[0].password, c->password, c->password_len);
		ck_assert_int_eq(cfg->targets[0].password[c->password_len], '\0');
	} else {
		ck_assert_int_eq(r, -EINVAL);
		ck_assert_msg(strstr(err, c->error) != NULL, "row %d: '%s'", _i, err);
		ck_assert_msg(strstr(err, file) != NULL, "row %d: '%s' does not name the file", _i, err);
		ck_assert_msg(strstr(err, "Zq9") == NULL, "row %d: '%s' shows the content", _i, err);
	}
	vp_config_free(cfg);
	ck_assert_int_eq(unlink(file), 0);
	ck_assert_int_eq(rmdir(dir), 0);
}
END_TEST

/* Unreadable: the message names the file and the errno's text. */
START_TEST(test_password_unreadable)
{
	char dir[] = "/tmp/vp-test-pw-XXXXXX";
	char file[PATH_MAX];
	char json[PATH_MAX + 128];
	char err[4096] = "";
	char expect[PATH_MAX + 64];
	struct vp_config *cfg = NULL;
	FILE *f;

	if (geteuid() == 0)
		return; /* root reads anything */
	ck_assert_ptr_nonnull(mkdtemp(dir));
	snprintf(file, sizeof(file), "%s/p.pw", dir);
	f = fopen(file, "w");
	ck_assert_ptr_nonnull(f);
	fputs("Zq9-secret\n", f);
	ck_assert_int_eq(fclose(f), 0);
	ck_assert_int_eq(chmod(file, 0), 0);
	snprintf(json, sizeof(json), "{\"targets\": [{\"name\": \"a\", \"url\": \"redis://h\", "
	         "\"password_file\": \"%s\"}]}", file);
	ck_assert_int_eq(vp_config_load_string(json, "t.json", &cfg, err, sizeof(err)), -EINVAL);
	snprintf(expect, sizeof(expect), "targets[0].password_file: cannot read '%s': Permission "
	         "denied", file);
	ck_assert_msg(strstr(err, expect) != NULL, "'%s'", err);
	ck_assert_int_eq(unlink(file), 0);
	ck_assert_int_eq(rmdir(dir), 0);
}
END_TEST

/* agent_url and agent_token_file (issue 3): the peer agent a refusal is
 * explained by. 'url' is the JSON value (NULL: no agent_url), 'token' the
 * token file's content (NULL: no agent_token_file). The content never
 * appears in a message. */
struct agent_case {
	const char *url;
	const char *token;
	size_t token_len;         /* 0: strlen; with repeat, how many of token[0] */
	bool repeat;
	const char *error;        /* NULL: loads */
};

static const struct agent_case agent_cases[] = {
	{ "'http://198.18.0.2:9464'", "Zq9-tok\n", 0, false, NULL },
	{ "'http://198.18.0.2:9464/'", NULL, 0, false, NULL },
	{ "'https://198.18.0.2:9464'", "Zq9-tok", 0, false, NULL },
	/* A name would be resolved by libcurl, past agent.dns_servers: refused. */
	{ "'https://agent.internal:9464'", "Zq9-tok", 0, false, "targets[0].agent_url: "
	  "'https://agent.internal:9464': agent_url must name the target agent by IP address: a "
	  "host name would not be resolved through agent.dns_servers" },
	{ "'http://localhost:9464'", NULL, 0, false, "agent_url must name the target agent by IP "
	  "address" },
	/* inet_aton() would read this as 198.18.0.2; the URL parser refuses it. */
	{ "'http://198.18.2:9464'", NULL, 0, false, "targets[0].agent_url: 'http://198.18.2:9464': "
	  "'198.18.2' is not an IPv4 address" },
	{ "'http://[fd00:198:18::2]:9464'", NULL, 0, false, NULL },
	{ "'tcp://198.18.0.2:9464'", NULL, 0, false, "targets[0].agent_url: "
	  "'tcp://198.18.0.2:9464': the peer agent's status server is reached over http:// or https://" },
	{ "'http://198.18.0.2:9464/api'", NULL, 0, false, "targets[0].agent_url: "
	  "'http://198.18.0.2:9464/api': expected the agent's base URL without a path" },
	{ "'http://198.18.0.2:9464/?port=1'", NULL, 0, false, "without a path" },
	/* The URL parser drops a fragment; the agent would then ask for '/'. */
	{ "'http://198.18.0.2:9464#x'", NULL, 0, false, "targets[0].agent_url: "
	  "'http://198.18.0.2:9464#x': expected the agent's base URL without a path" },
	{ "'http://198.18.0.2:9464?x'", NULL, 0, false, "without a path" },
	{ "'http://u:Zq9@198.18.0.2:9464'", NULL, 0, false, "credentials are not accepted" },
	{ "'http://198.18.0.2:99999'", NULL, 0, false, "targets[0].agent_url: " },
	{ "''", NULL, 0, false, "targets[0].agent_url: empty string" },
	{ "5", NULL, 0, false, "targets[0].agent_url: expected a string, got an integer" },
	{ NULL, "Zq9-tok", 0, false, "targets[0].agent_token_file: needs agent_url, the peer agent "
	  "to send the token to" },
	{ "'http://198.18.0.2:9464'", "Zq9 tok\n", 0, false, "targets[0].agent_token_file: '"
	  "@FILE@' must hold one token of printable bytes without spaces" },
	{ "'http://198.18.0.2:9464'", "Zq9\ttok", 0, false, "must hold one token of printable" },
	{ "'http://198.18.0.2:9464'", "Zq9\0tok", 7, false, "must hold one token of printable" },
	{ "'http://198.18.0.2:9464'", "\n", 0, false, "is empty; it must hold the peer agent's "
	  "status token" },
	{ "'http://198.18.0.2:9464'", "x", 1024, true, NULL },
	{ "'http://198.18.0.2:9464'", "x", 1025, true, "is more than 1024 bytes, the limit for a "
	  "status token" },
};

START_TEST(test_agent_url)
{
	const struct agent_case *c = &agent_cases[_i];
	char dir[] = "/tmp/vp-test-agent-XXXXXX";
	char file[PATH_MAX], keys[PATH_MAX + 256], json[PATH_MAX + 512], expect[PATH_MAX + 256];
	char err[4096] = "";
	struct vp_config *cfg = NULL;
	const char *at;
	char *quoted;
	FILE *f;
	int r, n = 0;

	ck_assert_ptr_nonnull(mkdtemp(dir));
	snprintf(file, sizeof(file), "%s/agent.token", dir);
	if (c->url != NULL)
		n = snprintf(keys, sizeof(keys), ", 'agent_url': %s", c->url);
	if (c->token != NULL) {
		f = fopen(file, "w");
		ck_assert_ptr_nonnull(f);
		for (size_t i = 0; c->repeat && i < c->token_len; i++)
			fputc(c->token[0], f);
		if (!c->repeat)
			fwrite(c->token, 1, c->token_len ? c->token_len : strlen(c->token), f);
		ck_assert_int_eq(fclose(f), 0);
		snprintf(keys + n, sizeof(keys) - (size_t)n, ", 'agent_token_file': '%s'", file);
	}
	snprintf(json, sizeof(json), "{'targets': [{'name': 'a', 'url': 'tcp://198.18.0.2:8080'%s}]}",
	         c->url == NULL && c->token == NULL ? "" : keys);
	quoted = json_of(json);
	r = vp_config_load_string(quoted, "t.json", &cfg, err, sizeof(err));
	if (c->error == NULL) {
		ck_assert_msg(r == 0, "row %d: %s", _i, err);
		ck_assert_ptr_nonnull(cfg->targets[0].agent_url);
		ck_assert((cfg->targets[0].agent_token != NULL) == (c->token != NULL));
		if (c->token != NULL && !c->repeat) {
			ck_assert_str_eq(cfg->targets[0].agent_token, "Zq9-tok");
			ck_assert_uint_eq(cfg->targets[0].agent_token_len, 7);
			ck_assert_str_eq(cfg->targets[0].agent_token_file, file);
		} else if (c->token != NULL) {
			ck_assert_uint_eq(cfg->targets[0].agent_token_len, c->token_len);
		}
	} else {
		ck_assert_int_eq(r, -EINVAL);
		at = strstr(c->error, "@FILE@");
		if (at != NULL)
			snprintf(expect, sizeof(expect), "%.*s%s%s", (int)(at - c->error), c->error, file,
			         at + 6);
		else
			snprintf(expect, sizeof(expect), "%s", c->error);
		ck_assert_msg(strstr(err, expect) != NULL, "row %d: '%s' lacks '%s'", _i, err, expect);
		ck_assert_msg(strstr(err, "Zq9") == NULL, "row %d: '%s' shows a secret", _i, err);
	}
	vp_config_free(cfg);
	free(quoted);
	if (c->token != NULL)
		ck_assert_int_eq(unlink(file), 0);
	ck_assert_int_eq(rmdir(dir), 0);
}
END_TEST

/* The new target keys land in the target. */
START_TEST(test_target_keys)
{
	static const char text[] =
		"{'targets': ["
		" {'name': 'pg', 'url': 'postgres://h', 'user': 'probe', 'database': 'orders',"
		"  'tls': 'verify-full'},"
		" {'name': 'pg2', 'url': 'postgres://h', 'tls': 'disable'},"
		" {'name': 'pg3', 'url': 'postgres://h'},"
		" {'name': 'r', 'url': 'redis://h', 'username': 'default'},"
		" {'name': 'rs', 'url': 'rediss://h', 'username': 'u'}]}";
	struct vp_config *cfg = NULL;
	char err[4096] = "";
	char *json = json_of(text);

	ck_assert_msg(vp_config_load_string(json, "t.json", &cfg, err, sizeof(err)) == 0, "%s", err);
	ck_assert_str_eq(cfg->targets[0].user, "probe");
	ck_assert_str_eq(cfg->targets[0].database, "orders");
	ck_assert_int_eq(cfg->targets[0].tls, VP_TLS_VERIFY_FULL);
	ck_assert_int_eq(cfg->targets[1].tls, VP_TLS_DISABLE);
	ck_assert_int_eq(cfg->targets[2].tls, VP_TLS_PREFER);
	ck_assert_ptr_null(cfg->targets[2].user);
	ck_assert_ptr_null(cfg->targets[2].database);
	ck_assert_str_eq(cfg->targets[3].username, "default");
	ck_assert_str_eq(cfg->targets[4].username, "u");
	ck_assert_ptr_null(cfg->targets[3].password);
	ck_assert_str_eq(vp_tls_mode_name(VP_TLS_REQUIRE), "require");
	ck_assert_str_eq(vp_tls_mode_name(VP_TLS_MAX), "invalid");
	vp_config_free(cfg);
	free(json);
}
END_TEST

/* The http(s) keys land in the target (issue 4). "@CA@" is a CA file the
 * test writes. */
struct http_key_case {
	const char *keys;
	uint8_t n;                    /* expect_status ranges */
	uint16_t first_lo, first_hi, last_lo, last_hi;
	const char *host_header;      /* NULL: not set */
	bool ca_file;
};

static const struct http_key_case http_key_cases[] = {
	{ "", 0, 0, 0, 0, 0, NULL, false },
	{ ", 'expect_status': '200-399'", 1, 200, 399, 200, 399, NULL, false },
	{ ", 'expect_status': '204'", 1, 204, 204, 204, 204, NULL, false },
	{ ", 'expect_status': '200,204'", 2, 200, 200, 204, 204, NULL, false },
	{ ", 'expect_status': '200-299,404,500-503'", 3, 200, 299, 500, 503, NULL, false },
	{ ", 'expect_status': '100-599'", 1, 100, 599, 100, 599, NULL, false },
	{ ", 'expect_status': '200,201,202,203,204,205,206,207,208,209,210,211,212,213,214,215'",
	  16, 200, 200, 215, 215, NULL, false },
	{ ", 'host_header': 'api.internal'", 0, 0, 0, 0, 0, "api.internal", false },
	{ ", 'host_header': 'api.internal:8080'", 0, 0, 0, 0, 0, "api.internal:8080", false },
	{ ", 'host_header': '[fd00:198:18::2]:443'", 0, 0, 0, 0, 0, "[fd00:198:18::2]:443", false },
	{ ", 'ca_file': '@CA@', 'expect_status': '200', 'host_header': 'db_1.internal'", 1, 200,
	  200, 200, 200, "db_1.internal", true },
};

START_TEST(test_http_keys)
{
	const struct http_key_case *c = &http_key_cases[_i];
	char dir[] = "/tmp/vp-test-ca-XXXXXX";
	char ca[PATH_MAX], keys[PATH_MAX + 256], text[2 * PATH_MAX + 256];
	const char *at;
	struct vp_config *cfg = NULL;
	const struct vp_target *t;
	char err[4096] = "";
	char *json;
	FILE *f;

	ck_assert_ptr_nonnull(mkdtemp(dir));
	snprintf(ca, sizeof(ca), "%s/ca.pem", dir);
	f = fopen(ca, "w");
	ck_assert_ptr_nonnull(f);
	fputs("-----BEGIN CERTIFICATE-----\n-----END CERTIFICATE-----\n", f);
	ck_assert_int_eq(fclose(f), 0);
	at = strstr(c->keys, "@CA@");
	if (at != NULL)
		snprintf(keys, sizeof(keys), "%.*s%s%s", (int)(at - c->keys), c->keys, ca, at + 4);
	else
		snprintf(keys, sizeof(keys), "%s", c->keys);
	snprintf(text, sizeof(text), "{'targets': [{'name': 'a', 'url': 'https://h/healthz'%s}]}",
	         keys);
	json = json_of(text);
	ck_assert_msg(vp_config_load_string(json, "t.json", &cfg, err, sizeof(err)) == 0,
	              "row %d: %s", _i, err);
	t = &cfg->targets[0];
	ck_assert_uint_eq(t->expect_status.n, c->n);
	if (c->n > 0) {
		ck_assert_uint_eq(t->expect_status.r[0].lo, c->first_lo);
		ck_assert_uint_eq(t->expect_status.r[0].hi, c->first_hi);
		ck_assert_uint_eq(t->expect_status.r[c->n - 1].lo, c->last_lo);
		ck_assert_uint_eq(t->expect_status.r[c->n - 1].hi, c->last_hi);
	}
	if (c->host_header != NULL)
		ck_assert_str_eq(t->host_header, c->host_header);
	else
		ck_assert_ptr_null(t->host_header);
	if (c->ca_file)
		ck_assert_str_eq(t->ca_file, ca);
	else
		ck_assert_ptr_null(t->ca_file);
	vp_config_free(cfg);
	free(json);
	ck_assert_int_eq(unlink(ca), 0);
	ck_assert_int_eq(rmdir(dir), 0);
}
END_TEST

/* Files: what is in them, or what they are, and what the loader says. */
enum file_kind {
	FILE_MISSING, FILE_DIR, FILE_HUGE, FILE_AT_LIMIT, FILE_TEXT, FILE_UNREADABLE,
	FILE_SYSTEM,   /* 'content' names an existing file of the system */
};

struct file_case {
	enum file_kind kind;
	const char *content;
	int r;
	const char *error;      /* after "config 'PATH': "; NULL: must load */
	size_t len;             /* of 'content', when it holds a NUL */
};

static const struct file_case file_cases[] = {
	{ FILE_MISSING, NULL, -ENOENT, "cannot open: No such file or directory", 0 },
	{ FILE_DIR, NULL, -EISDIR, "cannot read: Is a directory", 0 },
	{ FILE_HUGE, NULL, -EFBIG, "file is 4194305 bytes, more than the limit of 4194304", 0 },
	{ FILE_AT_LIMIT, NULL, 0, NULL, 0 },
	{ FILE_UNREADABLE, "{}", -EACCES, "cannot open: Permission denied", 0 },
	{ FILE_TEXT, "{}", 0, NULL, 0 },
	{ FILE_TEXT, "", -EINVAL, "line 1, column 0: syntax error", 0 },
	{ FILE_TEXT, "{\n 'targets': [\n  {'name': 'a', 'url': 'tcp://h'}\n ]\n}\n", -EINVAL,
	  "targets[0].url: 'tcp://h': tcp:// needs a port", 0 },
	{ FILE_TEXT, "{\n 'targets': [,]\n}\n", -EINVAL, "line 2, column 14: syntax error", 0 },
	{ FILE_TEXT, "{}\0{}", -EINVAL, "line 1, column 3: syntax error", 5 },
	/* no size to stat, and no end: only the byte limit stops the read */
	{ FILE_SYSTEM, "/dev/zero", -EFBIG, "file is more than 4194304 bytes, the limit", 0 },
	/* opens, then fails to read: address 0 of the test is not mapped */
	{ FILE_SYSTEM, "/proc/self/mem", -EIO, "cannot read: Input/output error", 0 },
};

static void make_file(const struct file_case *c, const char *path)
{
	int fd;

	if (c->kind == FILE_MISSING)
		return;
	if (c->kind == FILE_DIR) {
		ck_assert_int_eq(mkdir(path, 0700), 0);
		return;
	}
	fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	ck_assert_int_ge(fd, 0);
	if (c->kind == FILE_HUGE) {
		ck_assert_int_eq(ftruncate(fd, VP_CONFIG_MAX_BYTES + 1), 0);
	} else if (c->kind == FILE_AT_LIMIT) {
		/* '{}' and then spaces, to exactly the limit */
		ck_assert_int_eq(ftruncate(fd, VP_CONFIG_MAX_BYTES), 0);
		ck_assert_int_eq(pwrite(fd, "{}", 2, 0), 2);
		for (off_t off = 2; off < VP_CONFIG_MAX_BYTES; off += 65536) {
			static char spaces[65536];

			memset(spaces, ' ', sizeof(spaces));
			ck_assert_int_ge(pwrite(fd, spaces, (size_t)(VP_CONFIG_MAX_BYTES - off) <
			                 sizeof(spaces) ? (size_t)(VP_CONFIG_MAX_BYTES - off) :
			                 sizeof(spaces), off), 1);
		}
	} else {
		char *json = json_of(c->content);
		size_t len = c->len > 0 ? c->len : strlen(c->content);

		/* json_of() stops at a NUL; what follows it needs no quotes */
		ck_assert_int_eq(write(fd, json, strlen(json)), (ssize_t)strlen(json));
		if (len > strlen(json))
			ck_assert_int_eq(write(fd, c->content + strlen(json), len - strlen(json)),
			                 (ssize_t)(len - strlen(json)));
		free(json);
	}
	ck_assert_int_eq(close(fd), 0);
	if (c->kind == FILE_UNREADABLE)
		ck_assert_int_eq(chmod(path, 0), 0);
}

START_TEST(test_file)
{
	const struct file_case *c = &file_cases[_i];
	char dir[] = "/tmp/vp-test-config-XXXXXX";
	char path[PATH_MAX];
	char expect[PATH_MAX + 256];
	struct vp_config *cfg = NULL;
	char err[4096] = "";
	int r;

	if (c->kind == FILE_UNREADABLE && geteuid() == 0)
		return; /* root reads anything; nothing to test */
	ck_assert_ptr_nonnull(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/vpcprobe.json", dir);
	if (c->kind == FILE_SYSTEM)
		snprintf(path, sizeof(path), "%s", c->content);
	else
		make_file(c, path);
	r = vp_config_load_file(path, &cfg, err, sizeof(err));
	ck_assert_msg(r == c->r, "row %d: expected %d, got %d: %s", _i, c->r, r, err);
	if (c->error != NULL) {
		snprintf(expect, sizeof(expect), "config '%s': ", path);
		ck_assert_msg(strncmp(err, expect, strlen(expect)) == 0, "row %d: '%s'", _i, err);
		ck_assert_msg(strstr(err, c->error) != NULL, "row %d: '%s' lacks '%s'", _i, err,
		              c->error);
		ck_assert_ptr_null(cfg);
	} else {
		ck_assert_ptr_nonnull(cfg);
		ck_assert_str_eq(cfg->source, path);
	}
	vp_config_free(cfg);
	if (c->kind == FILE_DIR)
		rmdir(path);
	else if (c->kind != FILE_SYSTEM)
		unlink(path);
	ck_assert_int_eq(rmdir(dir), 0);
}
END_TEST

/* The API's own edges: NULL arguments, small or missing error buffers. */
START_TEST(test_api_edges)
{
	struct vp_config *cfg = NULL;
	char err[24];
	char *big;

	ck_assert_ptr_null(vp_config_free(NULL));
	ck_assert_int_eq(vp_config_load_string(NULL, "t", &cfg, err, sizeof(err)), -EINVAL);
	ck_assert_str_eq(err, "config 't': no configur");
	ck_assert_int_eq(vp_config_load_file(NULL, &cfg, err, sizeof(err)), -EINVAL);
	ck_assert_str_eq(err, "config '(null)': no fil");
	ck_assert_int_eq(vp_config_load_string("[]", "t", &cfg, NULL, 0), -EINVAL);
	ck_assert_int_eq(vp_config_load_string("[]", "t.json", &cfg, err, sizeof(err)), -EINVAL);
	ck_assert_uint_eq(strlen(err), sizeof(err) - 1);
	ck_assert_int_eq(vp_config_load_string("[]", NULL, &cfg, err, sizeof(err)), -EINVAL);
	ck_assert_str_eq(err, "config '(string)': expe");
	ck_assert_int_eq(vp_config_load_file("/nonexistent/x.json", &cfg, err, 1), -ENOENT);
	ck_assert_str_eq(err, "");
	ck_assert_ptr_null(cfg);
	big = malloc(VP_CONFIG_MAX_BYTES + 2);
	ck_assert_ptr_nonnull(big);
	memset(big, ' ', VP_CONFIG_MAX_BYTES + 1);
	big[VP_CONFIG_MAX_BYTES + 1] = '\0';
	ck_assert_int_eq(vp_config_load_string(big, "t", &cfg, NULL, 0), -EFBIG);
	ck_assert_int_eq(vp_config_load_string(big, "t", &cfg, err, sizeof(err)), -EFBIG);
	ck_assert_str_eq(err, "config 't': more than 4");
	free(big);
}
END_TEST

/* A ca_file's content and the target's kind and tls: the loader reads the
 * file, so that a wrong one is said at load and not at every probe. */
struct ca_case {
	const char *content;
	size_t repeat;            /* > 0: 'content' is one byte, repeated */
	const char *url;
	const char *tls;          /* NULL: not set */
	const char *error;        /* after "targets[0].ca_file: ", NULL: loads */
};

#define PEM_CERT "-----BEGIN CERTIFICATE-----\nMIIBkTCB+wIJAK\n-----END CERTIFICATE-----\n"

static const struct ca_case ca_cases[] = {
	{ PEM_CERT, 0, "rediss://10.20.0.4:6378", NULL, NULL },
	{ PEM_CERT PEM_CERT, 0, "postgres://10.20.0.3", "verify-full", NULL },
	{ PEM_CERT, 0, "postgres://10.20.0.3", "require", NULL },
	{ PEM_CERT, 0, "postgres://10.20.0.3", NULL, NULL },       /* prefer: verifies the chain */
	{ PEM_CERT, 0, "postgres://10.20.0.3", "disable", "needs TLS, and tls is \"disable\"" },
	{ PEM_CERT, 0, "https://api.internal/healthz", NULL, NULL },     /* one key for all */
	{ "", 0, "rediss://h", NULL, "holds no PEM certificate (-----BEGIN CERTIFICATE-----)" },
	{ "", 0, "https://h/", NULL, "holds no PEM certificate" },
	{ "MIIBkTCB+wIJAK\n", 0, "rediss://h", NULL, "holds no PEM certificate" },
	{ PEM_CERT "-----BEGIN PRIVATE KEY-----\nMIG\n-----END PRIVATE KEY-----\n", 0,
	  "rediss://h", NULL, "holds a private key; ca_file takes CA certificates only" },
	{ "-----BEGIN EC PRIVATE KEY-----\nMHc\n", 0, "postgres://h", "verify-full",
	  "holds a private key" },
	{ "x", VP_TLS_CA_FILE_MAX + 1, "rediss://h", NULL,
	  "is more than 4194304 bytes, the limit for a CA file" },
};

START_TEST(test_ca_file)
{
	const struct ca_case *c = &ca_cases[_i];
	char dir[] = "/tmp/vp-test-ca-XXXXXX";
	char file[PATH_MAX];
	char json[PATH_MAX + 256];
	char tls[64] = "";
	char err[4096] = "";
	struct vp_config *cfg = NULL;
	FILE *f;
	int r;

	ck_assert_ptr_nonnull(mkdtemp(dir));
	snprintf(file, sizeof(file), "%s/ca.pem", dir);
	f = fopen(file, "w");
	ck_assert_ptr_nonnull(f);
	if (c->repeat > 0)
		for (size_t i = 0; i < c->repeat; i++)
			fputc(c->content[0], f);
	else
		fputs(c->content, f);
	ck_assert_int_eq(fclose(f), 0);
	if (c->tls)
		snprintf(tls, sizeof(tls), ", \"tls\": \"%s\"", c->tls);
	snprintf(json, sizeof(json), "{\"targets\": [{\"name\": \"a\", \"url\": \"%s\", "
	         "\"ca_file\": \"%s\"%s}]}", c->url, file, tls);
	r = vp_config_load_string(json, "t.json", &cfg, err, sizeof(err));
	if (c->error == NULL) {
		ck_assert_msg(r == 0, "row %d: %s", _i, err);
		ck_assert_str_eq(cfg->targets[0].ca_file, file);
	} else {
		ck_assert_int_eq(r, -EINVAL);
		ck_assert_msg(strstr(err, "targets[0].ca_file: ") != NULL && strstr(err, c->error),
		              "row %d: '%s'", _i, err);
		ck_assert_uint_eq(count_lines(err), 1);
	}
	vp_config_free(cfg);
	ck_assert_int_eq(unlink(file), 0);
	ck_assert_int_eq(rmdir(dir), 0);
}
END_TEST

static Suite *config_suite(void)
{
	Suite *s = suite_create("config");
	TCase *errors = tcase_create("errors");
	TCase *loads = tcase_create("loads");

	tcase_add_loop_test(errors, test_bad_config, 0, N_ELEMS(bad_cases));
	tcase_add_loop_test(errors, test_array_limits, 0, N_ELEMS(size_cases));
	tcase_add_loop_test(loads, test_good_config, 0, N_ELEMS(good_cases));
	tcase_add_loop_test(loads, test_delivery_settings, 0, N_ELEMS(delivery_cases));
	tcase_add_loop_test(loads, test_gcloud_exports, 0, N_ELEMS(exports_cases));
	tcase_add_loop_test(loads, test_file, 0, N_ELEMS(file_cases));
	tcase_add_test(loads, test_embedded_default);
	tcase_add_test(loads, test_design_example);
	tcase_add_test(loads, test_example_file);
	tcase_add_loop_test(loads, test_password_file, 0, N_ELEMS(password_cases));
	tcase_add_test(loads, test_password_unreadable);
	tcase_add_loop_test(loads, test_ca_file, 0, N_ELEMS(ca_cases));
	tcase_add_test(loads, test_target_keys);
	tcase_add_loop_test(loads, test_agent_url, 0, N_ELEMS(agent_cases));
	tcase_add_loop_test(loads, test_http_keys, 0, N_ELEMS(http_key_cases));
	tcase_add_test(loads, test_api_edges);
	suite_add_tcase(s, errors);
	suite_add_tcase(s, loads);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(config_suite());
	int failed;

	srunner_run_all(sr, CK_ENV);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
