/*
 * An Atlas transform plugin in C, to show the ABI (plugins/ABI.md) needs no
 * Rust: it drops every reading whose attribute starts with "debug_", which
 * firmware builds under test send and production dashboards should not see.
 *
 * Freestanding: no libc, no imports. Readings it keeps are copied through
 * byte for byte, so it only has to find each reading's "attribute".
 *
 *   clang --target=wasm32 -O2 -nostdlib -Wl,--no-entry -o drop_debug.wasm drop_debug.c
 */
#include <stdint.h>

#define EXPORT(name) __attribute__((export_name(name)))

static const char PREFIX[] = "debug_";
static const char MALFORMED[] = "{\"error\":\"drop-debug: the input is not a batch of readings\"}";

/* The linker puts the heap after the data and the stack. Every call gets a
 * fresh instance, so a bump allocator that never frees is enough. */
extern unsigned char __heap_base;
static uintptr_t heap_top;

static unsigned char *allocate(uint32_t len) {
    if (!heap_top) heap_top = (uintptr_t)&__heap_base;
    uintptr_t start = (heap_top + 7) & ~(uintptr_t)7;
    uintptr_t end = start + len;
    uintptr_t have = __builtin_wasm_memory_size(0) * 65536;
    if (end > have) {
        uintptr_t pages = (end - have + 65535) / 65536;
        /* Over the tenant's memory limit: trap, and the host names the limit. */
        if (__builtin_wasm_memory_grow(0, pages) == (uintptr_t)-1) __builtin_trap();
    }
    heap_top = end;
    return (unsigned char *)start;
}

EXPORT("atlas_abi_version") int32_t atlas_abi_version(void) { return 1; }

EXPORT("atlas_alloc") int32_t atlas_alloc(int32_t len) {
    return (int32_t)(uintptr_t)allocate((uint32_t)len);
}

/* A tiny JSON scanner over the input; each function returns the index
 * just past what it skipped, or 0 when the input is malformed. */
static const unsigned char *in;
static uint32_t n;

static uint32_t ws(uint32_t i) {
    while (i < n && (in[i] == ' ' || in[i] == '\n' || in[i] == '\r' || in[i] == '\t')) i++;
    return i;
}

static uint32_t string_end(uint32_t i) {
    if (i >= n || in[i] != '"') return 0;
    for (i++; i < n; i++) {
        if (in[i] == '\\') i++;
        else if (in[i] == '"') return i + 1;
    }
    return 0;
}

static uint32_t value_end(uint32_t i) {
    if (i >= n) return 0;
    if (in[i] == '"') return string_end(i);
    if (in[i] == '{' || in[i] == '[') {
        uint32_t depth = 0;
        while (i < n) {
            if (in[i] == '"') {
                if (!(i = string_end(i))) return 0;
                continue;
            }
            if (in[i] == '{' || in[i] == '[') depth++;
            if (in[i] == '}' || in[i] == ']') {
                if (--depth == 0) return i + 1;
            }
            i++;
        }
        return 0;
    }
    uint32_t start = i;
    while (i < n && in[i] != ',' && in[i] != '}' && in[i] != ']' && in[i] != ' ' && in[i] != '\n') i++;
    return i > start ? i : 0;
}

/* Is the string at in[i] (opening quote) exactly `word`? */
static int is_key(uint32_t i, const char *word) {
    uint32_t j = 0;
    for (i++; i < n && word[j]; i++, j++) {
        if (in[i] != (unsigned char)word[j]) return 0;
    }
    return !word[j] && i < n && in[i] == '"';
}

/* Does the object at in[i] have an "attribute" starting with PREFIX?
 * Returns 1 or 0, and -1 when the object is malformed. */
static int is_debug(uint32_t i) {
    i = ws(i + 1);
    while (i < n && in[i] != '}') {
        uint32_t key = i;
        if (!(i = string_end(i))) return -1;
        i = ws(i);
        if (i >= n || in[i] != ':') return -1;
        i = ws(i + 1);
        if (is_key(key, "attribute") && in[i] == '"') {
            uint32_t j = 0;
            while (PREFIX[j] && i + 1 + j < n && in[i + 1 + j] == (unsigned char)PREFIX[j]) j++;
            return PREFIX[j] == 0;
        }
        if (!(i = value_end(i))) return -1;
        i = ws(i);
        if (i < n && in[i] == ',') i = ws(i + 1);
    }
    return 0;
}

static void put(unsigned char *out, uint32_t *len, const unsigned char *s, uint32_t k) {
    for (uint32_t j = 0; j < k; j++) out[(*len)++] = s[j];
}

static int64_t pack(const unsigned char *p, uint32_t len) {
    return (int64_t)(((uint64_t)(uintptr_t)p << 32) | len);
}

static int64_t malformed(void) {
    return pack((const unsigned char *)MALFORMED, sizeof MALFORMED - 1);
}

EXPORT("atlas_transform") int64_t atlas_transform(int32_t ptr, int32_t len) {
    in = (const unsigned char *)(uintptr_t)ptr;
    n = (uint32_t)len;
    unsigned char *out = allocate(n + 16);
    uint32_t out_len = 0;
    put(out, &out_len, (const unsigned char *)"{\"readings\":[", 13);

    uint32_t i = ws(0);
    if (i >= n || in[i] != '{') return malformed();
    i = ws(i + 1);
    int found = 0;
    while (i < n && in[i] != '}') {
        uint32_t key = i;
        if (!(i = string_end(i))) return malformed();
        i = ws(i);
        if (i >= n || in[i] != ':') return malformed();
        i = ws(i + 1);
        if (!is_key(key, "readings")) {
            if (!(i = value_end(i))) return malformed();
        } else {
            if (i >= n || in[i] != '[') return malformed();
            found = 1;
            int first = 1;
            i = ws(i + 1);
            while (i < n && in[i] != ']') {
                if (in[i] != '{') return malformed();
                uint32_t end = value_end(i);
                int debug = is_debug(i);
                if (!end || debug < 0) return malformed();
                if (!debug) {
                    if (!first) out[out_len++] = ',';
                    put(out, &out_len, in + i, end - i);
                    first = 0;
                }
                i = ws(end);
                if (i < n && in[i] == ',') i = ws(i + 1);
            }
            if (i >= n) return malformed();
            i++;
        }
        i = ws(i);
        if (i < n && in[i] == ',') i = ws(i + 1);
    }
    if (!found) return malformed();
    put(out, &out_len, (const unsigned char *)"]}", 2);
    return pack(out, out_len);
}
