/* Vehicle logs as a terminal's application writes them: JSON lines or CSV with a header line. */
#ifndef KANGYI_TERMINAL_INPUT_H
#define KANGYI_TERMINAL_INPUT_H

#include <stddef.h>
#include <stdint.h>

typedef enum { FORMAT_JSONL, FORMAT_CSV } input_format;

typedef struct {
    input_format format;
    const char *terminal_id;
    char **columns;  /* CSV: the header's column names */
    size_t n_columns;
} input_reader;

/* One encoded UploadVehicleLogsRequest. `sequence` is the line's own, or 0 when it has none. */
typedef struct {
    int64_t sequence;
    uint8_t *bytes;
    size_t length;
} encoded_log;

/* Encodes one input line. Returns 1 on success; 0 for a line to skip (blank, or the CSV header); -1 with
 * *error set for a line that cannot be encoded. With `sequence` > 0 it replaces the line's own. */
int input_encode_line(input_reader *reader, char *line, int64_t sequence, encoded_log *out, const char **error);
/* The sequence a line carries (0 if none or unreadable), without encoding it; -1 for a line that is not a
 * log (blank, or the CSV header, which this reads). */
int64_t input_line_sequence(input_reader *reader, const char *line);
void input_reader_free(input_reader *reader);

#endif
