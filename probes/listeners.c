typedef int vp_placeholder_t; /* replaced as the module is written */
