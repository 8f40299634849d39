#include "spool.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* A record on disk: magic, payload length, sequence, a checksum of the payload, the payload. */
#define SPOOL_MAGIC 0x4B595350u /* "KYSP" */
#define HEADER_SIZE 20

static uint32_t checksum(const uint8_t *bytes, size_t length) {  /* FNV-1a */
    uint32_t hash = 2166136261u;
    for (size_t i = 0; i < length; i++) hash = (hash ^ bytes[i]) * 16777619u;
    return hash;
}

static void put32(uint8_t *p, uint32_t v) { for (int i = 0; i < 4; i++) p[i] = (uint8_t)(v >> (24 - 8 * i)); }
static void put64(uint8_t *p, uint64_t v) { for (int i = 0; i < 8; i++) p[i] = (uint8_t)(v >> (56 - 8 * i)); }
static uint32_t get32(const uint8_t *p) { return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3]; }
static uint64_t get64(const uint8_t *p) { return (uint64_t)get32(p) << 32 | get32(p + 4); }

static char *path_in(const spool *s, const char *name) {
    size_t n = strlen(s->directory) + strlen(name) + 2;
    char *path = malloc(n);
    snprintf(path, n, "%s/%s", s->directory, name);
    return path;
}

static int fsync_directory(const spool *s) {
    int fd = open(s->directory, O_RDONLY | O_DIRECTORY);
    if (fd < 0) return -1;
    int rc = fsync(fd);
    close(fd);
    return rc;
}

static int keep(spool *s, int64_t sequence, const uint8_t *bytes, size_t length) {
    if (s->count == s->capacity) {
        size_t capacity = s->capacity ? s->capacity * 2 : 256;
        spool_record *records = realloc(s->records, capacity * sizeof *records);
        if (!records) return -1;
        s->records = records;
        s->capacity = capacity;
    }
    uint8_t *copy = malloc(length ? length : 1);
    if (!copy) return -1;
    memcpy(copy, bytes, length);
    s->records[s->count++] = (spool_record){sequence, copy, length};
    if (sequence > s->highest) s->highest = sequence;
    return 0;
}

int spool_open(spool *s, const char *directory) {
    memset(s, 0, sizeof *s);
    s->directory = strdup(directory);
    if (mkdir(directory, 0700) != 0 && errno != EEXIST) return -1;

    char *acked_path = path_in(s, "acked");
    FILE *acked = fopen(acked_path, "r");
    free(acked_path);
    if (acked) {
        if (fscanf(acked, "%" SCNd64, &s->acked) != 1) s->acked = 0;
        fclose(acked);
    }
    s->highest = s->acked;

    char *data_path = path_in(s, "spool.dat");
    s->fd = open(data_path, O_RDWR | O_CREAT, 0600);
    free(data_path);
    if (s->fd < 0) return -1;
    off_t end = lseek(s->fd, 0, SEEK_END), at = 0;
    uint8_t header[HEADER_SIZE];
    lseek(s->fd, 0, SEEK_SET);
    while (at + HEADER_SIZE <= end && pread(s->fd, header, HEADER_SIZE, at) == HEADER_SIZE) {
        uint32_t length = get32(header + 4);
        if (get32(header) != SPOOL_MAGIC || at + HEADER_SIZE + (off_t)length > end) break;
        uint8_t *payload = malloc(length ? length : 1);
        if (!payload || pread(s->fd, payload, length, at + HEADER_SIZE) != (ssize_t)length ||
            checksum(payload, length) != get32(header + 16)) {
            free(payload);
            break;
        }
        int64_t sequence = (int64_t)get64(header + 8);
        if (sequence > s->acked) keep(s, sequence, payload, length);
        else if (sequence > s->highest) s->highest = sequence;
        free(payload);
        at += HEADER_SIZE + length;
    }
    if (at < end) {  /* a record torn by a crash mid-write: never acknowledged, never sent */
        if (ftruncate(s->fd, at) != 0 || fsync(s->fd) != 0) return -1;
        fprintf(stderr, "kangyi-terminal: spool: cut a torn record at byte %lld\n", (long long)at);
    }
    lseek(s->fd, 0, SEEK_END);
    return 0;
}

int spool_append(spool *s, int64_t sequence, const uint8_t *bytes, size_t length) {
    uint8_t header[HEADER_SIZE];
    put32(header, SPOOL_MAGIC);
    put32(header + 4, (uint32_t)length);
    put64(header + 8, (uint64_t)sequence);
    put32(header + 16, checksum(bytes, length));
    if (write(s->fd, header, HEADER_SIZE) != HEADER_SIZE || write(s->fd, bytes, length) != (ssize_t)length) return -1;
    if (fdatasync(s->fd) != 0) return -1;
    return keep(s, sequence, bytes, length);
}

int spool_acknowledge(spool *s, int64_t acked_through) {
    if (acked_through <= s->acked) return 0;
    char *path = path_in(s, "acked"), *temporary = path_in(s, "acked.tmp");
    int rc = -1;
    FILE *file = fopen(temporary, "w");
    if (file) {
        fprintf(file, "%" PRId64 "\n", acked_through);
        if (fflush(file) == 0 && fsync(fileno(file)) == 0 && fclose(file) == 0) {
            file = NULL;
            rc = rename(temporary, path) == 0 ? fsync_directory(s) : -1;
        }
        if (file) fclose(file);
    }
    free(path);
    free(temporary);
    if (rc != 0) return -1;
    s->acked = acked_through;
    if (acked_through > s->highest) s->highest = acked_through;
    size_t dropped = 0;
    while (dropped < s->count && s->records[dropped].sequence <= acked_through) free(s->records[dropped++].bytes);
    memmove(s->records, s->records + dropped, (s->count - dropped) * sizeof *s->records);
    s->count -= dropped;
    return 0;
}

size_t spool_pending(const spool *s) { return s->count; }

int spool_compact(spool *s) {
    if (s->count != 0) return 0;
    if (ftruncate(s->fd, 0) != 0 || fsync(s->fd) != 0) return -1;
    lseek(s->fd, 0, SEEK_SET);
    return 0;
}

void spool_close(spool *s) {
    for (size_t i = 0; i < s->count; i++) free(s->records[i].bytes);
    free(s->records);
    if (s->fd >= 0) close(s->fd);
    free(s->directory);
    memset(s, 0, sizeof *s);
    s->fd = -1;
}
