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
    "usage: rfjit wisdom show | export FILE | import FILE | forget   [--file PATH]\n"
    "  show          print the remembered plans (the wisdom file's text)\n"
    "  export FILE   write them to FILE (merged with what FILE holds)\n"
    "  import FILE   merge FILE into the wisdom file; a file from another machine or build,\n"
    "                or a corrupt one, is refused with the reason\n"
    "  forget        remove the wisdom file\n"
    "  --file PATH   use PATH instead of the default wisdom file\n"
    "The default file is $XDG_DATA_HOME/rfjit/wisdom, else ~/.local/share/rfjit/wisdom.\n";

int cmd_wisdom(int argc, char **argv)
{
    const char *verb = NULL, *arg = NULL, *file = NULL;
    for (int i = 1; i < argc; i++) {
        const char *o = argv[i];
        if (!strcmp(o, "--help") || !strcmp(o, "-h")) {
            fputs(help, stdout);
            return CLI_OK;
        }
        if (!strcmp(o, "--file")) {
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
        if (s == RFJIT_OK)
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
