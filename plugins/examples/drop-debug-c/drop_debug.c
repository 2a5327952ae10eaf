/*
 * An Atlas transform plugin in C, to show the ABI (plugins/ABI.md) needs no
 * Rust: it drops every reading whose attribute starts with "debug_", which
 * firmware builds under test send and production dashboards should not see.
 *
 * It speaks ABI version 2, the binary payload: fixed-width records that
 * point into a string table. The answer is the input itself with the kept
 * records moved together: the header says where the string table is, so
 * the table and the string bytes stay where they are, and nothing is
 * allocated but the input buffer.
 *
 * Freestanding: no libc, no imports.
 *
 *   clang --target=wasm32 -O2 -nostdlib -Wl,--no-entry -o drop_debug.wasm drop_debug.c
 */
#include <stdint.h>

#define EXPORT(name) __attribute__((export_name(name)))

#define HEADER 16
#define RECORD 32
#define ENTRY 8
#define KIND_READINGS 0
#define KIND_ERROR 1

static const char PREFIX[] = "debug_";
static const char MALFORMED[] = "drop-debug: the input is not a batch of readings";

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

EXPORT("atlas_abi_version") int32_t atlas_abi_version(void) { return 2; }

EXPORT("atlas_alloc") int32_t atlas_alloc(int32_t len) {
    return (int32_t)(uintptr_t)allocate((uint32_t)len);
}

/* Little-endian fields; WebAssembly is little-endian and allows unaligned
 * loads, but memcpy-free byte access keeps this portable C. */
static uint32_t get32(const unsigned char *p) {
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static void put32(unsigned char *p, uint32_t v) {
    for (int i = 0; i < 4; i++) p[i] = (unsigned char)(v >> (8 * i));
}

static int64_t pack(const unsigned char *p, uint32_t len) {
    return (int64_t)(((uint64_t)(uintptr_t)p << 32) | len);
}

/* An error answer: a header and string 0, the message. */
static int64_t malformed(void) {
    uint32_t len = sizeof MALFORMED - 1;
    unsigned char *out = allocate(HEADER + ENTRY + len);
    put32(out, KIND_ERROR);
    put32(out + 4, 0);
    put32(out + 8, 1);
    put32(out + 12, HEADER);
    put32(out + HEADER, HEADER + ENTRY);
    put32(out + HEADER + 4, len);
    for (uint32_t i = 0; i < len; i++) out[HEADER + ENTRY + i] = (unsigned char)MALFORMED[i];
    return pack(out, HEADER + ENTRY + len);
}

EXPORT("atlas_transform") int64_t atlas_transform(int32_t ptr, int32_t len) {
    unsigned char *in = (unsigned char *)(uintptr_t)ptr;
    uint32_t n = (uint32_t)len;
    if (n < HEADER || get32(in) != KIND_READINGS) return malformed();
    uint32_t records = get32(in + 4), strings = get32(in + 8), table = get32(in + 12);
    /* 64-bit arithmetic: a hostile count cannot wrap past the checks. */
    if (HEADER + (uint64_t)records * RECORD > n || table + (uint64_t)strings * ENTRY > n) {
        return malformed();
    }

    uint32_t kept = 0;
    for (uint32_t r = 0; r < records; r++) {
        unsigned char *record = in + HEADER + r * RECORD;
        uint32_t attribute = get32(record + 16);
        if (attribute >= strings) return malformed();
        uint32_t offset = get32(in + table + attribute * ENTRY);
        uint32_t length = get32(in + table + attribute * ENTRY + 4);
        if ((uint64_t)offset + length > n) return malformed();
        uint32_t j = 0;
        while (PREFIX[j] && j < length && in[offset + j] == (unsigned char)PREFIX[j]) j++;
        if (PREFIX[j] == 0) continue;
        if (kept != r) {
            unsigned char *to = in + HEADER + kept * RECORD;
            for (uint32_t b = 0; b < RECORD; b++) to[b] = record[b];
        }
        kept++;
    }
    put32(in + 4, kept);
    return pack(in, n);
}
