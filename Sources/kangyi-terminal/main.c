/* kangyi-terminal: a checkpoint terminal's uploader. See README.md beside this file, or --help. */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "input.h"
#include "spool.h"
#include "upload.h"

static const char *usage =
    "usage: kangyi-terminal --terminal ID [options] [FILE]\n"
    "\n"
    "Uploads a checkpoint terminal's vehicle logs to Kangyi, exactly once, over HTTP/2 (gRPC\n"
    "kangyi.checkpoint.v1.CheckpointService/UploadVehicleLogs), through the gateway.\n"
    "\n"
    "It reads vehicle logs from FILE (or stdin) as JSON lines, or as CSV with a header line, and\n"
    "appends each to an on-disk spool first (fsync'd: it survives a crash or a reboot). It then\n"
    "streams the spool to the gateway with its bearer token (up to 64 logs a message), deletes\n"
    "what the server acknowledged (acked_through), and on any failure reconnects with backoff and\n"
    "resends the rest; a resent log the server already stored is acknowledged, not stored twice.\n"
    "It exits 0 once every log is acknowledged. Logs the server refuses (invalid, or another log\n"
    "under a used sequence) are reported on stderr and in SPOOL/rejected.jsonl by sequence and\n"
    "reason.\n"
    "\n"
    "Run it again with the same input after a crash: lines whose sequence the spool already holds\n"
    "or the server acknowledged are skipped. Without --input, only the spool is uploaded.\n"
    "\n"
    "options:\n"
    "  --target HOST:PORT   the gateway's gRPC address (default 127.0.0.1:50050)\n"
    "  --token TOKEN        bearer token of kind checkpoint-terminal (default $KANGYI_TOKEN)\n"
    "  --terminal ID        this terminal's id, as registered (RegisterTerminal); required\n"
    "  --spool DIR          the spool (default ./kangyi-spool-ID)\n"
    "  --format jsonl|csv   input format (default: csv for *.csv files, else jsonl)\n"
    "  --ca FILE            use TLS, trusting the CA certificates in FILE (PEM); default h2c\n"
    "  --max-backoff S      longest wait between reconnects in seconds (default 30)\n"
    "  --max-attempts N     give up (exit 1) after N failed attempts in a row (default: never)\n"
    "  --idle-timeout S     abandon a connection silent for S seconds (default 30)\n"
    "  --spool-only         spool the input and exit without uploading\n"
    "  --verbose            report every acknowledgement\n"
    "  --help               this text\n"
    "\n"
    "input fields (JSON keys, or CSV columns):\n"
    "  sequence             the terminal's own number, from 1, increasing (assigned after the spool's\n"
    "                       highest when absent)\n"
    "  plate                e.g. 豫A12345 (full-width letters, lower case and spaces are accepted)\n"
    "  plate_color          blue | yellow | green | white | black\n"
    "  vehicle_type         car | bus | lorry | van | motorcycle | other\n"
    "  direction            inbound | outbound\n"
    "  origin_code          declared origin: a province or city code (420000, 420100), optional\n"
    "  occupants            JSON: [{\"temperature\": 36.5, \"health_code\": \"green\"}, ...], the driver first\n"
    "  temperatures         CSV: 36.5;37.4      health_codes  CSV: green;red  (green | yellow | red)\n"
    "  driver_phone         optional    destination_district  optional, e.g. 410102\n"
    "  observed_at          RFC 3339 (2026-11-22T08:30:00+08:00) or seconds since 1970\n"
    "\n"
    "example:\n"
    "  echo '{\"sequence\":1,\"plate\":\"鄂A12345\",\"plate_color\":\"blue\",\"vehicle_type\":\"car\",\n"
    "        \"direction\":\"inbound\",\"occupants\":[{\"temperature\":36.6,\"health_code\":\"green\"}],\n"
    "        \"observed_at\":\"2026-11-22T08:30:00+08:00\"}' |\n"
    "    kangyi-terminal --terminal ZZ-YJ-01 --token kyt_... --target gateway:50050 -\n"
    "\n"
    "exit status: 0 all acknowledged; 1 gave up (--max-attempts) or a local error; 2 refused for good\n"
    "(unauthenticated, permission denied) or bad usage.\n";

static void fail(const char *message) {
    fprintf(stderr, "kangyi-terminal: %s\n", message);
    exit(2);
}

/* Appends the input's new logs to the spool; returns how many, or -1. */
static long spool_input(FILE *in, input_reader *reader, spool *s) {
    char *line = NULL;
    size_t capacity = 0;
    long added = 0, number = 0, skipped = 0, refused = 0;
    while (getline(&line, &capacity, in) > 0) {
        number++;
        int64_t own = input_line_sequence(reader, line);
        if (own < 0) continue;  /* blank, or the CSV header */
        if (own > 0 && own <= s->highest) {  /* already spooled or acknowledged: a rerun after a crash */
            skipped++;
            continue;
        }
        int64_t sequence = own > 0 ? 0 : s->highest + 1;
        encoded_log log;
        const char *error = NULL;
        int rc = input_encode_line(reader, line, sequence, &log, &error);
        if (rc == 0) continue;
        if (rc < 0) {
            fprintf(stderr, "kangyi-terminal: line %ld not spooled: %s\n", number, error ? error : "unreadable");
            refused++;
            continue;
        }
        if (spool_append(s, log.sequence, log.bytes, log.length) != 0) {
            free(log.bytes);
            free(line);
            fprintf(stderr, "kangyi-terminal: cannot write the spool: %s\n", strerror(errno));
            return -1;
        }
        free(log.bytes);
        added++;
    }
    free(line);
    if (skipped || refused) fprintf(stderr, "kangyi-terminal: %ld lines already spooled, %ld unreadable\n", skipped, refused);
    return added;
}

int main(int argc, char **argv) {
    signal(SIGPIPE, SIG_IGN);
    upload_options options = {.host = "127.0.0.1", .port = "50050", .token = getenv("KANGYI_TOKEN"), .idle_timeout_s = 30};
    const char *terminal = NULL, *spool_dir = NULL, *format = NULL;
    int max_backoff = 30, max_attempts = 0, spool_only = 0;
    static struct option longs[] = {
        {"target", required_argument, 0, 't'}, {"token", required_argument, 0, 'k'}, {"terminal", required_argument, 0, 'i'},
        {"spool", required_argument, 0, 's'}, {"format", required_argument, 0, 'f'}, {"ca", required_argument, 0, 'c'},
        {"max-backoff", required_argument, 0, 'b'}, {"max-attempts", required_argument, 0, 'a'},
        {"idle-timeout", required_argument, 0, 'd'}, {"spool-only", no_argument, 0, 'o'}, {"verbose", no_argument, 0, 'v'},
        {"help", no_argument, 0, 'h'}, {0, 0, 0, 0}};
    static char target[300];
    for (int c; (c = getopt_long(argc, argv, "", longs, NULL)) != -1;) {
        switch (c) {
        case 't': {
            snprintf(target, sizeof target, "%s", optarg);
            char *colon = strrchr(target, ':');
            if (!colon) fail("--target: HOST:PORT");
            *colon = 0;
            options.host = target;
            options.port = colon + 1;
            break;
        }
        case 'k': options.token = optarg; break;
        case 'i': terminal = optarg; break;
        case 's': spool_dir = optarg; break;
        case 'f': format = optarg; break;
        case 'c': options.ca_file = optarg; break;
        case 'b': max_backoff = atoi(optarg); break;
        case 'a': max_attempts = atoi(optarg); break;
        case 'd': options.idle_timeout_s = atoi(optarg); break;
        case 'o': spool_only = 1; break;
        case 'v': options.verbose = 1; break;
        case 'h': fputs(usage, stdout); return 0;
        default: fputs(usage, stderr); return 2;
        }
    }
    if (!terminal || !*terminal) fail("--terminal ID is required (see --help)");
    if (max_backoff < 1 || options.idle_timeout_s < 1) fail("--max-backoff and --idle-timeout must be at least 1");
    if (format && strcmp(format, "csv") != 0 && strcmp(format, "jsonl") != 0) fail("--format: jsonl or csv");
    char default_spool[256];
    if (!spool_dir) {
        snprintf(default_spool, sizeof default_spool, "kangyi-spool-%s", terminal);
        spool_dir = default_spool;
    }

    spool s;
    if (spool_open(&s, spool_dir) != 0) {
        fprintf(stderr, "kangyi-terminal: cannot open the spool %s: %s\n", spool_dir, strerror(errno));
        return 1;
    }
    char rejected[512];
    snprintf(rejected, sizeof rejected, "%s/rejected.jsonl", spool_dir);
    options.rejected_path = rejected;
    int status = 0; /* every way out closes the spool */

    if (optind < argc) {
        const char *path = argv[optind];
        FILE *in = strcmp(path, "-") == 0 ? stdin : fopen(path, "r");
        if (!in) {
            fprintf(stderr, "kangyi-terminal: cannot read %s: %s\n", path, strerror(errno));
            status = 1;
            goto done;
        }
        size_t n = strlen(path);
        input_reader reader = {
            .format = format ? (strcmp(format, "csv") == 0 ? FORMAT_CSV : FORMAT_JSONL)
                             : (n > 4 && strcmp(path + n - 4, ".csv") == 0 ? FORMAT_CSV : FORMAT_JSONL),
            .terminal_id = terminal};
        long added = spool_input(in, &reader, &s);
        input_reader_free(&reader);
        if (in != stdin) fclose(in);
        if (added < 0) {
            status = 1;
            goto done;
        }
        fprintf(stderr, "kangyi-terminal: spooled %ld logs; %zu to send\n", added, spool_pending(&s));
    }
    if (spool_only) goto done;

    /* Upload until everything is acknowledged; back off (with jitter) after each failed attempt. */
    srand((unsigned)time(NULL) ^ (unsigned)getpid());
    double backoff = 0.5;
    int failures = 0;
    while (spool_pending(&s) > 0) {
        int64_t before = s.acked;
        upload_result result = upload_once(&options, &s);
        if (result == UPLOAD_DONE) break;
        if (result == UPLOAD_FATAL) {
            status = 2;
            goto done;
        }
        if (s.acked > before) { backoff = 0.5; failures = 0; }
        if (max_attempts && ++failures >= max_attempts) {
            fprintf(stderr, "kangyi-terminal: giving up after %d attempts; %zu logs stay in the spool\n", failures, spool_pending(&s));
            status = 1;
            goto done;
        }
        double wait = backoff * (0.5 + (double)rand() / RAND_MAX / 2);
        fprintf(stderr, "kangyi-terminal: retrying in %.1f s\n", wait);
        struct timespec pause = {(time_t)wait, (long)((wait - (time_t)wait) * 1e9)};
        nanosleep(&pause, NULL);
        backoff = backoff * 2 > max_backoff ? max_backoff : backoff * 2;
    }
    spool_compact(&s);
    fprintf(stderr, "kangyi-terminal: every log acknowledged (through %" PRId64 ")\n", s.acked);
done:
    spool_close(&s);
    return status;
}
