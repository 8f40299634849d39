/* The terminal's on-disk spool: every log is appended and fsync'd before it is sent, and dropped only
 * once the server acknowledged it. Survives a crash or a reboot at any point. */
#ifndef KANGYI_TERMINAL_SPOOL_H
#define KANGYI_TERMINAL_SPOOL_H

#include <stddef.h>
#include <stdint.h>

typedef struct {
    int64_t sequence;
    uint8_t *bytes; /* an encoded UploadVehicleLogsRequest */
    size_t length;
} spool_record;

typedef struct {
    char *directory;
    int fd;                  /* spool.dat, open for appending */
    spool_record *records;   /* in sequence order; those up to `acked` are already dropped */
    size_t count, capacity;
    int64_t acked;           /* the server's acked_through, persisted in `acked` */
    int64_t highest;         /* the highest sequence ever spooled or acknowledged */
} spool;

/* Opens (creating) the spool in `directory`; a torn last record is cut off. 0 on success. */
int spool_open(spool *s, const char *directory);
/* Appends a record and fsyncs it. 0 on success. */
int spool_append(spool *s, int64_t sequence, const uint8_t *bytes, size_t length);
/* Records the server's acknowledgement (fsync'd, atomically) and drops what it covers. 0 on success. */
int spool_acknowledge(spool *s, int64_t acked_through);
/* Records still to send. */
size_t spool_pending(const spool *s);
/* Empties spool.dat once everything in it is acknowledged. */
int spool_compact(spool *s);
void spool_close(spool *s);

#endif
