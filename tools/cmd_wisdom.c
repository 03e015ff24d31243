/* SPDX-License-Identifier: MIT */
/*
 * This file is `rfjit wisdom`: show, export, import or forget what `rfjit tune` remembered on
 * this machine (the default wisdom file; $RFJIT_WISDOM or --file chooses another).
 */
#include "cli.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char help[] =
    "usage: rfjit wisdom show [--json] | export FILE | import FILE | forget   [--file PATH]\n"
    "  show          print the remembered plans (the wisdom file's text); --json: one object\n"
    "                {file, header, signature, records: [{key, patience, value}]}\n"
    "  export FILE   write them to FILE (merged with what FILE holds)\n"
    "  import FILE   merge FILE into the wisdom file; a file from another machine or build,\n"
    "                or a corrupt one, is refused with the reason\n"
    "  forget        remove the wisdom file\n"
    "  --file PATH   use PATH instead of the default wisdom file\n"
    "The default file is $XDG_DATA_HOME/rfjit/wisdom (if absolute), else\n"
    "~/.local/share/rfjit/wisdom (if HOME exists).\n";

static void json_string(const char *s, size_t n)
{
    putchar('"');
    for (size_t i = 0; i < n; i++) {
        const unsigned char c = (unsigned char)s[i];
        if (c == '"' || c == '\\')
            printf("\\%c", c);
        else if (c < 0x20)
            printf("\\u%04x", c);
        else
            putchar(c);
    }
    putchar('"');
}

/* The wisdom text (header line, signature line, then "key patience=P value" records) as one
 * JSON object; the library wrote the text, so a line that does not split is kept whole as a
 * key with no patience rather than dropped. */
static void show_json(const char *path, const char *text)
{
    printf("{\"file\": ");
    json_string(path, strlen(path));
    int line = 0, records = 0;
    for (const char *p = text; *p; line++) {
        const char *end = strchr(p, '\n');
        const size_t n = end ? (size_t)(end - p) : strlen(p);
        if (line == 0) {
            printf(", \"header\": ");
            json_string(p, n);
        } else if (line == 1) {
            const size_t skip = n >= 10 && !strncmp(p, "signature ", 10) ? 10 : 0;
            printf(", \"signature\": ");
            json_string(p + skip, n - skip);
            printf(", \"records\": [");
        } else if (n) {
            const char *sp1 = memchr(p, ' ', n);
            const char *sp2 = sp1 ? memchr(sp1 + 1, ' ', n - (size_t)(sp1 + 1 - p)) : NULL;
            printf("%s{\"key\": ", records++ ? ", " : "");
            if (sp1 && sp2 && !strncmp(sp1 + 1, "patience=", 9)) {
                json_string(p, (size_t)(sp1 - p));
                printf(", \"patience\": %d, \"value\": ", atoi(sp1 + 10));
                json_string(sp2 + 1, n - (size_t)(sp2 + 1 - p));
            } else {
                json_string(p, n);
            }
            putchar('}');
        }
        p += n + (end != NULL);
    }
    if (line < 2)
        printf(", \"records\": [");
    printf("]}\n");
}

int cmd_wisdom(int argc, char **argv)
{
    const char *verb = NULL, *arg = NULL, *file = NULL;
    int json = 0;
    for (int i = 1; i < argc; i++) {
        const char *o = argv[i];
        if (!strcmp(o, "--help") || !strcmp(o, "-h")) {
            fputs(help, stdout);
            return CLI_OK;
        }
        if (!strcmp(o, "--json")) {
            json = 1;
        } else if (!strcmp(o, "--file")) {
            if (!(file = cli_value(argc, argv, &i)))
                return cli_error("wisdom", CLI_USAGE, "--file needs a path");
        } else if (!verb) {
            verb = o;
        } else if (!arg) {
            arg = o;
        } else {
            return cli_error("wisdom", CLI_USAGE, "unexpected argument '%s'", o);
        }
    }
    if (!verb)
        return cli_error("wisdom", CLI_USAGE, "no action given (show, export, import, forget)");
    const int needs_arg = !strcmp(verb, "export") || !strcmp(verb, "import");
    if (strcmp(verb, "show") && strcmp(verb, "forget") && !needs_arg)
        return cli_error("wisdom", CLI_USAGE, "unknown action '%s' (show, export, import, forget)",
                         verb);
    if (json && strcmp(verb, "show"))
        return cli_error("wisdom", CLI_USAGE, "--json goes with show only");
    if (needs_arg != (arg != NULL))
        return cli_error("wisdom", CLI_USAGE, needs_arg ? "%s needs a FILE" : "%s takes no FILE",
                         verb);
    rfjit_ctx *ctx = cli_context_wisdom("wisdom", NULL, file);
    if (!ctx)
        return CLI_FAILED;
    rfjit_status s;
    int rc = CLI_OK;
    if (!strcmp(verb, "show")) {
        char *text = NULL;
        s = rfjit_wisdom_to_string(ctx, &text);
        if (s == RFJIT_OK && json)
            show_json(rfjit_wisdom_path(ctx), text);
        else if (s == RFJIT_OK)
            printf("# %s\n%s", rfjit_wisdom_path(ctx), text);
        rfjit_free(text);
    } else if (!strcmp(verb, "export")) {
        s = rfjit_wisdom_export(ctx, arg);
    } else if (!strcmp(verb, "import")) {
        s = rfjit_wisdom_import(ctx, arg);
        if (s == RFJIT_OK)
            s = rfjit_wisdom_export(ctx, NULL);
    } else {
        s = rfjit_wisdom_forget(ctx, 1);
    }
    if (s != RFJIT_OK)
        rc = cli_error("wisdom", CLI_FAILED, "%s", rfjit_ctx_last_error(ctx));
    rfjit_ctx_destroy(ctx);
    return rc;
}
