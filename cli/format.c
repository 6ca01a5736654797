/*
 * format.c -- text the command line and `tasklock mcp` both show (the MCP engine is also built
 * into the fuzzer without the rest of the command line).
 */
#include "format.h"

#include <stdio.h>

void tl_cli_format_age(int64_t ms, char *buf, size_t size)
{
    const int64_t sec = 1000, min = 60 * sec, hour = 60 * min, day = 24 * hour;

    if (ms < 0)
        ms = 0;
    if (ms < sec)
        (void)snprintf(buf, size, "%lldms", (long long)ms);
    else if (ms < min)
        (void)snprintf(buf, size, "%lld.%llds", (long long)(ms / sec), (long long)(ms % sec / 100));
    else if (ms < hour)
        (void)snprintf(buf, size, "%lldm%02llds", (long long)(ms / min),
                       (long long)(ms % min / sec));
    else if (ms < day)
        (void)snprintf(buf, size, "%lldh%02lldm", (long long)(ms / hour),
                       (long long)(ms % hour / min));
    else
        (void)snprintf(buf, size, "%lldd%02lldh", (long long)(ms / day),
                       (long long)(ms % day / hour));
}
