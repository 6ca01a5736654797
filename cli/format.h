/*
 * format.h -- text the command line and `tasklock mcp` both show.
 */
#ifndef TL_CLI_FORMAT_H
#define TL_CLI_FORMAT_H

#include <stddef.h>
#include <stdint.h>

/* A duration for people: "850ms", "3.2s", "3m12s", "2h05m", "1d03h" (negative shows as 0). */
void tl_cli_format_age(int64_t ms, char *buf, size_t size);

#endif /* TL_CLI_FORMAT_H */
