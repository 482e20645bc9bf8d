/* CRC32C (Castagnoli), the checksum of every spool frame. */
#ifndef VP_CRC32C_H
#define VP_CRC32C_H

#include <stddef.h>
#include <stdint.h>

/* Continues 'crc' (0 to start) over 'len' bytes. The pre- and post-
 * inversion are inside, so chaining calls over the pieces of a buffer gives
 * the CRC of the whole: vp_crc32c(vp_crc32c(0, a, n), b, m) == CRC(a || b).
 * The test vectors are those of RFC 3720, appendix B.4. */
uint32_t vp_crc32c(uint32_t crc, const void *buf, size_t len);

#endif
