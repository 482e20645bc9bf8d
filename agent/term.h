/* Results as an aligned table for a person at a terminal. */
#ifndef VP_TERM_H
#define VP_TERM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

#include "agent/engine.h"

struct vp_term_row {
	const char *target;                  /* borrowed */
	const struct vp_probe_result *res;   /* borrowed */
};

/* Prints the table, then the detail and hint of every result that is not ok.
 * Colour only when 'f' is a terminal and NO_COLOR is unset or empty. */
void vp_term_print(FILE *f, const struct vp_term_row *rows, size_t n);

/* Copies 'src' into 'dst' with every control character (C0, DEL, C1)
 * replaced by '?', so that text from a hostile peer cannot drive the
 * terminal. Truncates to 'len' - 1 bytes. */
void vp_term_safe(char *dst, size_t len, const char *src);

/* Whether colour is wanted on 'f'. */
bool vp_term_colour(FILE *f);

#endif
