/* The firewall line of a target on the page and in /api/v1/status (see
 * status_fw.h). The text quotes rule names, descriptions and tags of the
 * exports, which are untrusted: it only ever goes through vp_buf_html(). */
#include <string.h>

#include "agent/status_int.h"

const struct vp_status_fw_line *vp_status_fw_find(const struct vp_status_fw *fw,
                                                  const char *name)
{
	for (size_t i = 0; fw && i < fw->n; i++)
		if (strcmp(fw->lines[i].target, name) == 0)
			return &fw->lines[i];
	return NULL;
}

const char *vp_status_fw_answer_name(enum vp_status_fw_answer a)
{
	static const char *const names[VP_STATUS_FW_MAX] = {
		[VP_STATUS_FW_UNKNOWN] = "unknown",
		[VP_STATUS_FW_ALLOWED] = "allowed",
		[VP_STATUS_FW_DENIED] = "denied",
	};

	return (unsigned)a < VP_STATUS_FW_MAX ? names[a] : "unknown";
}

void vp_status_fw_html(struct vp_buf *b, const struct vp_status_fw_line *l)
{
	const char *answer = l ? vp_status_fw_answer_name(l->answer) : "none";

	vp_buf_printf(b, "<div class=\"fw fw-%s\"%s><span class=\"fwt\">", answer, l ? "" : " hidden");
	vp_buf_html(b, l ? l->text : "");
	vp_buf_printf(b, "</span><div class=\"fwfix\"%s><span class=\"sub\">fix:</span><code>",
	              l && l->fix[0] ? "" : " hidden");
	vp_buf_html(b, l ? l->fix : "");
	vp_buf_puts(b, "</code></div></div>\n");
}

json_t *vp_status_fw_json(const struct vp_status_fw *fw, const struct vp_status_fw_line *l)
{
	if (!fw || !l)
		return json_null();
	return json_pack("{s:s,s:s,s:s?,s:s,s:s?}", "answer", vp_status_fw_answer_name(l->answer),
	                 "text", l->text, "fix", l->fix[0] ? l->fix : NULL, "exports", fw->dir,
	                 "exports_time", fw->when[0] ? fw->when : NULL);
}

void vp_status_view_fw(struct vp_status *s, struct vp_status_view *v)
{
	const struct vp_instance *in = s->src.instance ? s->src.instance(s->src.arg) : NULL;

	v->fw_set = s->src.firewall ? s->src.firewall(s->src.arg) : NULL;
	v->fw = vp_status_fw_find(v->fw_set, v->st->target->name);
	/* The next steps again, with the network the metadata server named. */
	if (v->n_steps > 0 && in != NULL && in->network[0] != '\0')
		v->n_steps = vp_status_next_steps(v->st->target, v->worst, in->network, v->steps,
		                                  VP_STATUS_STEPS_MAX);
}
