#include "input.h"

#include <ctype.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "json.h"
#include "kangyi/checkpoint/v1/checkpoint.pb-c.h"

/* The value of a field as text: a JSON member or a CSV column. */
typedef struct {
    const json_value *object; /* JSON */
    char **cells;             /* CSV */
    input_reader *reader;
} fields;

static const char *text_of(const fields *f, const char *key, char *scratch, size_t size) {
    if (f->object) {
        const json_value *v = json_get(f->object, key);
        if (!v || v->type == JSON_NULL) return NULL;
        if (v->type == JSON_STRING) return v->string;
        if (v->type == JSON_NUMBER) {
            snprintf(scratch, size, "%.17g", v->number);
            return scratch;
        }
        return NULL;
    }
    for (size_t i = 0; i < f->reader->n_columns; i++)
        if (strcmp(f->reader->columns[i], key) == 0) return f->cells[i];
    return NULL;
}

/* "blue" → PLATE_COLOR_BLUE's number, by the enum's own descriptor; -1 if unknown. */
static int enum_value(const ProtobufCEnumDescriptor *descriptor, const char *prefix, const char *name) {
    if (!name || !*name) return 0;
    char full[96];
    size_t n = (size_t)snprintf(full, sizeof full, "%s", prefix);
    for (const char *c = name; *c && n < sizeof full - 1; c++) full[n++] = (char)toupper((unsigned char)(*c == '-' ? '_' : *c));
    full[n] = 0;
    const ProtobufCEnumValue *value = protobuf_c_enum_descriptor_get_value_by_name(descriptor, full);
    return value ? value->value : -1;
}

/* RFC 3339 ("2026-11-22T08:30:00Z", "...+08:00", fractions allowed) or seconds since 1970. */
static int parse_time(const char *text, int64_t *seconds, int32_t *nanos) {
    char *end;
    double number = strtod(text, &end);
    if (*text && *end == 0 && strchr(text, '-') == NULL) {
        *seconds = (int64_t)floor(number);
        *nanos = (int32_t)((number - floor(number)) * 1e9);
        return 1;
    }
    struct tm tm = {0};
    int consumed = 0;
    if (sscanf(text, "%4d-%2d-%2d%*[Tt ]%2d:%2d:%2d%n", &tm.tm_year, &tm.tm_mon, &tm.tm_mday, &tm.tm_hour, &tm.tm_min,
               &tm.tm_sec, &consumed) != 6)
        return 0;
    tm.tm_year -= 1900;
    tm.tm_mon -= 1;
    const char *rest = text + consumed;
    *nanos = 0;
    if (*rest == '.') {
        int digits = 0;
        int64_t fraction = 0;
        for (rest++; isdigit((unsigned char)*rest); rest++, digits++)
            if (digits < 9) fraction = fraction * 10 + (*rest - '0');
        for (; digits < 9; digits++) fraction *= 10;
        *nanos = (int32_t)fraction;
    }
    int64_t offset = 0;
    if (*rest == 'Z' || *rest == 'z') {
        rest++;
    } else if (*rest == '+' || *rest == '-') {
        int hours, minutes;
        if (sscanf(rest + 1, "%2d:%2d", &hours, &minutes) != 2) return 0;
        offset = (hours * 3600 + minutes * 60) * (*rest == '+' ? 1 : -1);
        rest += 6;
    } else {
        return 0;
    }
    if (*rest) return 0;
    *seconds = (int64_t)timegm(&tm) - offset;
    return 1;
}

/* Splits a CSV line in place (quotes with "" escapes); returns the number of cells. */
static size_t split_csv(char *line, char **cells, size_t max) {
    size_t n = 0;
    char *in = line;
    while (n < max) {
        char *out = in, *start = in;
        if (*in == '"') {
            in++;
            for (;;) {
                if (*in == 0) break;
                if (*in == '"' && in[1] == '"') { *out++ = '"'; in += 2; continue; }
                if (*in == '"') { in++; break; }
                *out++ = *in++;
            }
            while (*in && *in != ',') in++;
        } else {
            while (*in && *in != ',') *out++ = *in++;
        }
        int more = *in == ',';
        if (*in) in++;
        *out = 0;
        cells[n++] = start;
        if (!more) break;
    }
    return n;
}

static void trim_newline(char *line) {
    size_t n = strlen(line);
    while (n && (line[n - 1] == '\n' || line[n - 1] == '\r')) line[--n] = 0;
}

static int is_blank(const char *line) {
    for (; *line; line++)
        if (!isspace((unsigned char)*line)) return 0;
    return 1;
}

/* Reads a line's fields; returns 1, 0 (skip), or -1. */
static int open_fields(input_reader *reader, char *line, fields *f, json_value **json, char **cells, const char **error) {
    trim_newline(line);
    if (is_blank(line)) return 0;
    memset(f, 0, sizeof *f);
    f->reader = reader;
    if (reader->format == FORMAT_JSONL) {
        *json = json_parse(line, error);
        if (!*json) return -1;
        if ((*json)->type != JSON_OBJECT) { *error = "a line must be a JSON object"; return -1; }
        f->object = *json;
        return 1;
    }
    if (!reader->columns) {  /* the header */
        char *copy[64];
        size_t n = split_csv(line, copy, 64);
        reader->columns = calloc(n, sizeof *reader->columns);
        for (size_t i = 0; i < n; i++) reader->columns[i] = strdup(copy[i]);
        reader->n_columns = n;
        return 0;
    }
    size_t n = split_csv(line, cells, 64);
    for (size_t i = n; i < reader->n_columns; i++) cells[i] = "";
    f->cells = cells;
    return 1;
}

int64_t input_line_sequence(input_reader *reader, const char *line) {
    char *copy = strdup(line);
    fields f;
    json_value *json = NULL;
    char *cells[64];
    const char *error = NULL;
    int64_t sequence = 0;  /* unreadable lines: encoding them reports why */
    int opened = open_fields(reader, copy, &f, &json, cells, &error);
    if (opened == 0) sequence = -1;
    if (opened == 1) {
        char scratch[64];
        const char *text = text_of(&f, "sequence", scratch, sizeof scratch);
        sequence = text && *text ? strtoll(text, NULL, 10) : 0;
    }
    json_free(json);
    free(copy);
    return sequence;
}

#define ENUM(type, descriptor, prefix, key, target)                                               \
    do {                                                                                          \
        int v_ = enum_value(&descriptor, prefix, text_of(&f, key, scratch, sizeof scratch));      \
        if (v_ < 0) { *error = "unknown " key; goto fail; }                                       \
        target = (type)v_;                                                                        \
    } while (0)

int input_encode_line(input_reader *reader, char *line, int64_t sequence, encoded_log *out, const char **error) {
    fields f;
    json_value *json = NULL;
    char *cells[64];
    int opened = open_fields(reader, line, &f, &json, cells, error);
    if (opened <= 0) return opened;

    char scratch[64];
    Kangyi__Checkpoint__V1__VehicleLog log = KANGYI__CHECKPOINT__V1__VEHICLE_LOG__INIT;
    Google__Protobuf__Timestamp observed = GOOGLE__PROTOBUF__TIMESTAMP__INIT;
    Kangyi__Checkpoint__V1__Occupant occupants[99];
    Kangyi__Checkpoint__V1__Occupant *occupant_pointers[99];
    char *owned[8] = {0};  /* strings copied out of `scratch` */
    size_t n_owned = 0;
    int result = -1;

#define STRING(key, target)                                                        \
    do {                                                                           \
        const char *t_ = text_of(&f, key, scratch, sizeof scratch);                \
        target = owned[n_owned++] = strdup(t_ ? t_ : "");                          \
    } while (0)

    const char *terminal = text_of(&f, "terminal_id", scratch, sizeof scratch);
    log.terminal_id = owned[n_owned++] = strdup(terminal && *terminal ? terminal : reader->terminal_id);
    if (sequence > 0) {
        log.sequence = sequence;
    } else {
        const char *text = text_of(&f, "sequence", scratch, sizeof scratch);
        log.sequence = text ? strtoll(text, NULL, 10) : 0;
    }
    STRING("plate", log.plate);
    STRING("origin_code", log.origin_code);
    STRING("driver_phone", log.driver_phone);
    STRING("destination_district", log.destination_district);
    ENUM(Kangyi__Checkpoint__V1__PlateColor, kangyi__checkpoint__v1__plate_color__descriptor, "PLATE_COLOR_", "plate_color", log.plate_color);
    ENUM(Kangyi__Checkpoint__V1__VehicleType, kangyi__checkpoint__v1__vehicle_type__descriptor, "VEHICLE_TYPE_", "vehicle_type", log.vehicle_type);
    ENUM(Kangyi__Checkpoint__V1__Direction, kangyi__checkpoint__v1__direction__descriptor, "DIRECTION_", "direction", log.direction);

    /* Occupants: JSON [{"temperature": 36.5, "health_code": "green"}, ...]; CSV "36.5;37.4" and "green;red". */
    size_t n = 0;
    if (f.object) {
        const json_value *list = json_get(f.object, "occupants");
        if (list && list->type == JSON_ARRAY) {
            for (size_t i = 0; i < list->count && n < 99; i++, n++) {
                const json_value *item = &list->items[i];
                Kangyi__Checkpoint__V1__Occupant o = KANGYI__CHECKPOINT__V1__OCCUPANT__INIT;
                const json_value *t = json_get(item, "temperature");
                const json_value *d = json_get(item, "temperature_decidegrees");
                if (t && t->type == JSON_NUMBER) o.temperature_decidegrees = (int32_t)lround(t->number * 10);
                else if (d && d->type == JSON_NUMBER) o.temperature_decidegrees = (int32_t)d->number;
                const json_value *code = json_get(item, "health_code");
                int v = enum_value(&kangyi__checkpoint__v1__health_code__descriptor, "HEALTH_CODE_",
                                   code && code->type == JSON_STRING ? code->string : NULL);
                if (v < 0) { *error = "unknown health_code"; goto fail; }
                o.health_code = (Kangyi__Checkpoint__V1__HealthCode)v;
                occupants[n] = o;
            }
        }
    } else {
        char temperatures[512] = "", codes[512] = "";
        const char *t = text_of(&f, "temperatures", scratch, sizeof scratch);
        snprintf(temperatures, sizeof temperatures, "%s", t ? t : "");
        const char *c = text_of(&f, "health_codes", scratch, sizeof scratch);
        snprintf(codes, sizeof codes, "%s", c ? c : "");
        char *tsave = NULL, *csave = NULL;
        char *tt = strtok_r(temperatures, ";", &tsave), *ct = strtok_r(codes, ";", &csave);
        for (; (tt || ct) && n < 99; n++) {
            Kangyi__Checkpoint__V1__Occupant o = KANGYI__CHECKPOINT__V1__OCCUPANT__INIT;
            if (tt) o.temperature_decidegrees = (int32_t)lround(strtod(tt, NULL) * 10);
            int v = enum_value(&kangyi__checkpoint__v1__health_code__descriptor, "HEALTH_CODE_", ct);
            if (v < 0) { *error = "unknown health_codes entry"; goto fail; }
            o.health_code = (Kangyi__Checkpoint__V1__HealthCode)v;
            occupants[n] = o;
            tt = tt ? strtok_r(NULL, ";", &tsave) : NULL;
            ct = ct ? strtok_r(NULL, ";", &csave) : NULL;
        }
    }
    for (size_t i = 0; i < n; i++) occupant_pointers[i] = &occupants[i];
    log.n_occupants = n;
    log.occupants = occupant_pointers;

    const char *when = text_of(&f, "observed_at", scratch, sizeof scratch);
    if (!when || !parse_time(when, &observed.seconds, &observed.nanos)) {
        *error = "observed_at: RFC 3339 (2026-11-22T08:30:00+08:00) or seconds since 1970";
        goto fail;
    }
    log.observed_at = &observed;

    Kangyi__Checkpoint__V1__UploadVehicleLogsRequest request = KANGYI__CHECKPOINT__V1__UPLOAD_VEHICLE_LOGS_REQUEST__INIT;
    request.log = &log;
    out->sequence = log.sequence;
    out->length = kangyi__checkpoint__v1__upload_vehicle_logs_request__get_packed_size(&request);
    out->bytes = malloc(out->length ? out->length : 1);
    if (!out->bytes) { *error = "out of memory"; goto fail; }
    kangyi__checkpoint__v1__upload_vehicle_logs_request__pack(&request, out->bytes);
    result = 1;
fail:
    for (size_t i = 0; i < n_owned; i++) free(owned[i]);
    json_free(json);
    return result;
}

void input_reader_free(input_reader *reader) {
    for (size_t i = 0; i < reader->n_columns; i++) free(reader->columns[i]);
    free(reader->columns);
    reader->columns = NULL;
    reader->n_columns = 0;
}
