/* A stream of N bytes shaped like a plain-SQL dump of a web application's tables: COPY rows of ids, e-mail
 * addresses, hex tokens, timestamps, short texts and JSON, every row distinct (so the content does not
 * deduplicate) and compressing about 3:1 as such dumps do. Used by benches/stream-blobs.sh for a real backup
 * of millions of stream chunks; written in C only so that it outruns the backup it feeds (Python makes tens of
 * MB/s). Build: cc -O2 -o dump-like dump-like.c      Usage: dump-like BYTES > dump.sql
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

static uint64_t state = 0x9e3779b97f4a7c15ull;

static uint64_t next(void) { /* splitmix64: fast, deterministic */
    uint64_t z = (state += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static const char *words[] = {"order", "shipped", "refund", "cart", "invoice", "gum", "mint", "cherry",
                              "bubble", "pack", "account", "login", "session", "upload", "avatar", "review"};

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: %s BYTES\n", argv[0]);
        return 2;
    }
    long long limit = atoll(argv[1]), written = 0;
    static char buf[1 << 16];
    written += printf("COPY public.events (id, email, token, created, note, payload) FROM stdin;\n");
    for (uint64_t id = 1; written < limit; id++) {
        uint64_t r = next(), s = next();
        int n = snprintf(buf, sizeof buf,
                         "%llu\tuser%llu@example.com\t%016llx\t2026-%02llu-%02llu %02llu:%02llu:%02llu\t%s %s %s\t"
                         "{\"cart\": %llu, \"items\": %llu, \"tag\": \"%s\"}\n",
                         (unsigned long long)id, (unsigned long long)(r % 5000000), (unsigned long long)s,
                         (unsigned long long)(r % 12 + 1), (unsigned long long)(r >> 8) % 28 + 1,
                         (unsigned long long)(r >> 16) % 24, (unsigned long long)(r >> 24) % 60,
                         (unsigned long long)(r >> 32) % 60, words[r >> 40 & 15], words[r >> 44 & 15],
                         words[r >> 48 & 15], (unsigned long long)(s % 100000), (unsigned long long)(r >> 52 & 31),
                         words[s >> 60 & 15]);
        if (fwrite(buf, 1, (size_t)n, stdout) != (size_t)n) return 1;
        written += n;
    }
    return 0;
}
