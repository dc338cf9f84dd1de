/* gk-tokens-group.c: the gateway's URL, client tokens and snippets.
 *
 * A new token is shown once, in its own row with a warning, and wiped
 * from memory when that row is dismissed or the window goes away; the
 * store keeps only its hash. Every token-store call goes through the
 * backend, in a worker thread.
 *
 * SPDX-License-Identifier: GPL-3.0-or-later
 */
#include "config.h"

#include <glib/gi18n.h>

#include "gk-format.h"
#include "gk-tokens-group.h"

/* The app's own gateway records uses on the app's connection, which the
 * backend's polling does not see: the list is read again this often while
 * it is shown (the store records a use at most once a minute anyway). */
#define REFRESH_INTERVAL_S 60

/* What the snippets put where the client token goes. */
#define TOKEN_PLACEHOLDER "gk_…"

enum {
  SNIPPET_CURL,
  SNIPPET_PYTHON,
  SNIPPET_JAVASCRIPT,
  N_SNIPPETS
};

struct _GkTokensGroup
{
  AdwPreferencesGroup  parent_instance;

  GkBackend           *backend;
  GCancellable        *cancellable;
  gboolean             loaded;
  gboolean             listing;
  gboolean             list_again;
  gboolean             creating;

  guint                port;
  char                *url;

  GtkWidget           *url_row;
  GtkWidget           *snippet_labels[N_SNIPPETS];
  GtkWidget           *name_row;
  GtkWidget           *create_button;
  GtkWidget           *new_token_row;
  GtkWidget           *new_token_label;
  char                *new_token;      /* shown once; wiped when dismissed */
  GPtrArray           *token_rows;
  guint                refresh_source;
};

G_DEFINE_FINAL_TYPE (GkTokensGroup, gk_tokens_group, ADW_TYPE_PREFERENCES_GROUP)

static void list_tokens (GkTokensGroup *self);

static void
toast (GkTokensGroup *self,
       const char    *text)
{
  GtkRoot *root = gtk_widget_get_root (GTK_WIDGET (self));

  if (ADW_IS_PREFERENCES_WINDOW (root))
    adw_preferences_window_add_toast (ADW_PREFERENCES_WINDOW (root), adw_toast_new (text));
}

static void
copy_text (GkTokensGroup *self,
           GtkWidget     *widget,
           const char    *text)
{
  gdk_clipboard_set_text (gtk_widget_get_clipboard (widget), text);
  toast (self, _("Copied to the clipboard"));
}

static GtkWidget *
copy_button_new (const char *name,
                 const char *tooltip)
{
  GtkWidget *button = gtk_button_new_from_icon_name ("edit-copy-symbolic");

  gtk_widget_set_name (button, name);
  gtk_widget_set_valign (button, GTK_ALIGN_CENTER);
  gtk_widget_set_tooltip_text (button, tooltip);
  gtk_accessible_update_property (GTK_ACCESSIBLE (button),
                                  GTK_ACCESSIBLE_PROPERTY_LABEL, tooltip, -1);
  gtk_widget_add_css_class (button, "flat");
  return button;
}

/* The URL and the snippets */

static char *
snippet_text (GkTokensGroup *self,
              guint          which)
{
  switch (which)
    {
    case SNIPPET_CURL:
      return g_strdup_printf ("curl %s/v1beta/models/gemini-2.5-flash:generateContent \\\n"
                              "  -H \"x-goog-api-key: " TOKEN_PLACEHOLDER "\" "
                              "-H \"Content-Type: application/json\" \\\n"
                              "  -d '{\"contents\":[{\"parts\":[{\"text\":\"Hello\"}]}]}'",
                              self->url);
    case SNIPPET_PYTHON:
      return g_strdup_printf ("from google import genai\n"
                              "from google.genai import types\n"
                              "\n"
                              "client = genai.Client(api_key=\"" TOKEN_PLACEHOLDER "\",\n"
                              "                      http_options=types.HttpOptions(base_url=\"%s\"))\n"
                              "print(client.models.generate_content(model=\"gemini-2.5-flash\", "
                              "contents=\"Hello\").text)",
                              self->url);
    case SNIPPET_JAVASCRIPT:
      return g_strdup_printf ("import { GoogleGenAI } from \"@google/genai\";\n"
                              "const ai = new GoogleGenAI({ apiKey: \"" TOKEN_PLACEHOLDER "\", "
                              "httpOptions: { baseUrl: \"%s\" } });\n"
                              "const res = await ai.models.generateContent({ model: \"gemini-2.5-flash\", "
                              "contents: \"Hello\" });\n"
                              "console.log(res.text);",
                              self->url);
    default:
      g_assert_not_reached ();
    }
}

static void
update_url (GkTokensGroup *self)
{
  g_free (self->url);
  self->url = g_strdup_printf ("http://127.0.0.1:%u", self->port);
  adw_action_row_set_subtitle (ADW_ACTION_ROW (self->url_row), self->url);

  for (guint i = 0; i < N_SNIPPETS; i++)
    {
      g_autofree char *text = snippet_text (self, i);

      gtk_label_set_text (GTK_LABEL (self->snippet_labels[i]), text);
    }
}

static void
copy_url_cb (GtkWidget     *button,
             GkTokensGroup *self)
{
  copy_text (self, button, self->url);
}

static void
copy_snippet_cb (GtkWidget     *button,
                 GkTokensGroup *self)
{
  GtkWidget *label = g_object_get_data (G_OBJECT (button), "gk-snippet-label");

  copy_text (self, button, gtk_label_get_text (GTK_LABEL (label)));
}

static GtkWidget *
snippet_row_new (GkTokensGroup *self,
                 guint          which,
                 const char    *title,
                 const char    *subtitle,
                 const char    *button_name)
{
  GtkWidget *expander = adw_expander_row_new ();
  GtkWidget *row = adw_preferences_row_new ();
  GtkWidget *box = gtk_box_new (GTK_ORIENTATION_HORIZONTAL, 6);
  GtkWidget *label = gtk_label_new (NULL);
  GtkWidget *button = copy_button_new (button_name, _("Copy the Example"));

  adw_preferences_row_set_title (ADW_PREFERENCES_ROW (expander), title);
  adw_expander_row_set_subtitle (ADW_EXPANDER_ROW (expander), subtitle);

  gtk_label_set_selectable (GTK_LABEL (label), TRUE);
  gtk_label_set_wrap (GTK_LABEL (label), TRUE);
  gtk_label_set_wrap_mode (GTK_LABEL (label), PANGO_WRAP_CHAR);
  gtk_label_set_xalign (GTK_LABEL (label), 0);
  gtk_widget_set_hexpand (label, TRUE);
  gtk_widget_add_css_class (label, "monospace");
  gtk_widget_set_margin_start (box, 12);
  gtk_widget_set_margin_end (box, 6);
  gtk_widget_set_margin_top (box, 6);
  gtk_widget_set_margin_bottom (box, 6);
  gtk_widget_set_valign (button, GTK_ALIGN_START);
  g_object_set_data (G_OBJECT (button), "gk-snippet-label", label);
  g_signal_connect (button, "clicked", G_CALLBACK (copy_snippet_cb), self);

  gtk_box_append (GTK_BOX (box), label);
  gtk_box_append (GTK_BOX (box), button);
  gtk_list_box_row_set_child (GTK_LIST_BOX_ROW (row), box);
  gtk_list_box_row_set_activatable (GTK_LIST_BOX_ROW (row), FALSE);
  adw_expander_row_add_row (ADW_EXPANDER_ROW (expander), row);

  self->snippet_labels[which] = label;
  return expander;
}

/* Creating a token */

static void
dismiss_new_token (GkTokensGroup *self)
{
  gtk_label_set_text (GTK_LABEL (self->new_token_label), "");
  gtk_widget_set_visible (self->new_token_row, FALSE);
  if (self->new_token != NULL)
    gk_crypto_wipe_string (g_steal_pointer (&self->new_token));
}

static void
copy_token_cb (GtkWidget     *button,
               GkTokensGroup *self)
{
  if (self->new_token != NULL)
    copy_text (self, button, self->new_token);
}

static gboolean
name_is_valid (GkTokensGroup  *self,
               GError        **error)
{
  return gk_token_validate_name (gtk_editable_get_text (GTK_EDITABLE (self->name_row)), error);
}

static void
update_create_button (GkTokensGroup *self)
{
  gtk_widget_set_sensitive (self->create_button,
                            self->backend != NULL && !self->creating && name_is_valid (self, NULL));
}

static void
name_changed_cb (GkTokensGroup *self)
{
  /* An error shows on submit, not while typing; editing clears it. */
  gtk_widget_remove_css_class (self->name_row, "error");
  update_create_button (self);
}

static void
create_done_cb (GObject      *object,
                GAsyncResult *result,
                gpointer      user_data)
{
  g_autoptr(GkTokensGroup) self = user_data;
  g_autoptr(GError) error = NULL;
  char *token = gk_backend_create_token_finish (GK_BACKEND (object), result, &error);

  if (g_error_matches (error, G_IO_ERROR, G_IO_ERROR_CANCELLED))
    return;

  self->creating = FALSE;
  if (token == NULL)
    {
      gtk_widget_add_css_class (self->name_row, "error");
      toast (self, error->message);
      update_create_button (self);
      return;
    }

  dismiss_new_token (self);
  self->new_token = token;
  gtk_label_set_text (GTK_LABEL (self->new_token_label), token);
  gtk_widget_set_visible (self->new_token_row, TRUE);
  gtk_editable_set_text (GTK_EDITABLE (self->name_row), "");
  update_create_button (self);
  list_tokens (self);
}

static void
create_cb (GkTokensGroup *self)
{
  g_autoptr(GError) error = NULL;

  if (self->backend == NULL || self->creating)
    return;
  if (!name_is_valid (self, &error))
    {
      gtk_widget_add_css_class (self->name_row, "error");
      toast (self, error->message);
      return;
    }

  self->creating = TRUE;
  update_create_button (self);
  gk_backend_create_token_async (self->backend, gtk_editable_get_text (GTK_EDITABLE (self->name_row)),
                                 self->cancellable, create_done_cb, g_object_ref (self));
}

static GtkWidget *
new_token_row_new (GkTokensGroup *self)
{
  GtkWidget *row = adw_preferences_row_new ();
  GtkWidget *box = gtk_box_new (GTK_ORIENTATION_VERTICAL, 6);
  GtkWidget *warning = gtk_label_new (_("Copy this token now: it will not be shown again. "
                                        "Only its fingerprint is kept."));
  GtkWidget *buttons = gtk_box_new (GTK_ORIENTATION_HORIZONTAL, 6);
  GtkWidget *copy = gtk_button_new_with_mnemonic (_("_Copy Token"));
  GtkWidget *done = gtk_button_new_with_mnemonic (_("_Done"));

  gtk_widget_set_name (row, "new-token");
  gtk_widget_set_name (warning, "new-token-warning");
  gtk_label_set_wrap (GTK_LABEL (warning), TRUE);
  gtk_label_set_xalign (GTK_LABEL (warning), 0);
  gtk_widget_add_css_class (warning, "warning");

  self->new_token_label = gtk_label_new (NULL);
  gtk_widget_set_name (self->new_token_label, "new-token-text");
  gtk_label_set_selectable (GTK_LABEL (self->new_token_label), TRUE);
  gtk_label_set_wrap (GTK_LABEL (self->new_token_label), TRUE);
  gtk_label_set_wrap_mode (GTK_LABEL (self->new_token_label), PANGO_WRAP_CHAR);
  gtk_label_set_xalign (GTK_LABEL (self->new_token_label), 0);
  gtk_widget_add_css_class (self->new_token_label, "monospace");

  gtk_widget_set_name (copy, "copy-token");
  gtk_widget_add_css_class (copy, "suggested-action");
  gtk_widget_set_name (done, "dismiss-token");
  gtk_widget_set_halign (buttons, GTK_ALIGN_END);
  g_signal_connect (copy, "clicked", G_CALLBACK (copy_token_cb), self);
  g_signal_connect_swapped (done, "clicked", G_CALLBACK (dismiss_new_token), self);
  gtk_box_append (GTK_BOX (buttons), done);
  gtk_box_append (GTK_BOX (buttons), copy);

  gtk_widget_set_margin_start (box, 12);
  gtk_widget_set_margin_end (box, 12);
  gtk_widget_set_margin_top (box, 12);
  gtk_widget_set_margin_bottom (box, 12);
  gtk_box_append (GTK_BOX (box), warning);
  gtk_box_append (GTK_BOX (box), self->new_token_label);
  gtk_box_append (GTK_BOX (box), buttons);
  gtk_list_box_row_set_child (GTK_LIST_BOX_ROW (row), box);
  gtk_list_box_row_set_activatable (GTK_LIST_BOX_ROW (row), FALSE);
  gtk_widget_set_visible (row, FALSE);
  return row;
}

/* Revoking a token */

static void
revoke_done_cb (GObject      *object,
                GAsyncResult *result,
                gpointer      user_data)
{
  g_autoptr(GkTokensGroup) self = user_data;
  g_autoptr(GError) error = NULL;

  if (!gk_backend_revoke_token_finish (GK_BACKEND (object), result, &error))
    {
      if (!g_error_matches (error, G_IO_ERROR, G_IO_ERROR_CANCELLED))
        toast (self, error->message);
      return;
    }
  list_tokens (self);
}

static void
revoke_response_cb (AdwMessageDialog *dialog,
                    const char       *response,
                    GkTokensGroup    *self)
{
  gint64 id = *(gint64 *) g_object_get_data (G_OBJECT (dialog), "gk-token-id");

  if (g_strcmp0 (response, "revoke") != 0 || self->backend == NULL)
    return;
  gk_backend_revoke_token_async (self->backend, id, self->cancellable, revoke_done_cb,
                                 g_object_ref (self));
}

static void
revoke_clicked_cb (GtkWidget     *button,
                   GkTokensGroup *self)
{
  GtkWidget *row = gtk_widget_get_ancestor (button, ADW_TYPE_ACTION_ROW);
  const char *name = adw_preferences_row_get_title (ADW_PREFERENCES_ROW (row));
  gint64 *id = g_memdup2 (g_object_get_data (G_OBJECT (row), "gk-token-id"), sizeof (gint64));
  GtkRoot *root = gtk_widget_get_root (GTK_WIDGET (self));
  g_autofree char *heading = NULL;
  GtkWidget *dialog;

  /* Translators: %s is a client token's name. */
  heading = g_strdup_printf (_("Revoke “%s”?"), name);
  dialog = adw_message_dialog_new (GTK_IS_WINDOW (root) ? GTK_WINDOW (root) : NULL, heading,
                                   _("Programs using this token are refused from now on. "
                                     "This cannot be undone."));
  adw_message_dialog_add_responses (ADW_MESSAGE_DIALOG (dialog),
                                    "cancel", _("_Cancel"),
                                    "revoke", _("_Revoke"),
                                    NULL);
  adw_message_dialog_set_response_appearance (ADW_MESSAGE_DIALOG (dialog), "revoke",
                                              ADW_RESPONSE_DESTRUCTIVE);
  adw_message_dialog_set_default_response (ADW_MESSAGE_DIALOG (dialog), "cancel");
  adw_message_dialog_set_close_response (ADW_MESSAGE_DIALOG (dialog), "cancel");
  g_object_set_data_full (G_OBJECT (dialog), "gk-token-id", id, g_free);
  g_signal_connect_object (dialog, "response", G_CALLBACK (revoke_response_cb), self, 0);
  gtk_window_present (GTK_WINDOW (dialog));
}

/* The list */

static GtkWidget *
token_row_new (GkTokensGroup *self,
               const GkToken *token)
{
  GtkWidget *row = adw_action_row_new ();
  GtkWidget *revoke = gtk_button_new_from_icon_name ("user-trash-symbolic");
  g_autofree char *created = gk_format_date (token->created_at);
  g_autofree char *created_full = gk_format_date_full (token->created_at);
  g_autofree char *used = NULL;
  g_autofree char *used_full = NULL;
  g_autofree char *subtitle = NULL;
  g_autofree char *tooltip = NULL;

  if (token->last_used_at != 0)
    {
      g_autofree char *date = gk_format_date (token->last_used_at);

      /* Translators: %s is a date such as "Today 20:23". */
      used = g_strdup_printf (_("last used %s"), date);
      used_full = gk_format_date_full (token->last_used_at);
    }
  else
    used = g_strdup (_("never used"));

  /* Translators: the first %s is a date such as "Today 20:23", the second
   * "last used <date>" or "never used". */
  subtitle = g_strdup_printf (_("Created %s · %s"), created, used);
  /* Translators: dates in full ("Tuesday 1 December 2026, 14:05:09"). */
  tooltip = used_full != NULL ? g_strdup_printf (_("Created %s\nLast used %s"), created_full, used_full)
                              : g_strdup_printf (_("Created %s"), created_full);

  adw_preferences_row_set_use_markup (ADW_PREFERENCES_ROW (row), FALSE);
  adw_preferences_row_set_title (ADW_PREFERENCES_ROW (row), token->name);
  adw_action_row_set_subtitle (ADW_ACTION_ROW (row), subtitle);
  gtk_widget_set_tooltip_text (row, tooltip);
  gtk_widget_set_name (row, "token-row");
  g_object_set_data_full (G_OBJECT (row), "gk-token-id",
                          g_memdup2 (&token->id, sizeof token->id), g_free);

  gtk_widget_set_name (revoke, "revoke-token");
  gtk_widget_set_valign (revoke, GTK_ALIGN_CENTER);
  gtk_widget_add_css_class (revoke, "flat");
  gtk_widget_set_tooltip_text (revoke, _("Revoke…"));
  gtk_accessible_update_property (GTK_ACCESSIBLE (revoke),
                                  GTK_ACCESSIBLE_PROPERTY_LABEL, _("Revoke…"), -1);
  g_signal_connect (revoke, "clicked", G_CALLBACK (revoke_clicked_cb), self);
  adw_action_row_add_suffix (ADW_ACTION_ROW (row), revoke);
  return row;
}

static void
list_done_cb (GObject      *object,
              GAsyncResult *result,
              gpointer      user_data)
{
  g_autoptr(GkTokensGroup) self = user_data;
  g_autoptr(GError) error = NULL;
  g_autoptr(GPtrArray) tokens = gk_backend_list_tokens_finish (GK_BACKEND (object), result, &error);

  if (g_error_matches (error, G_IO_ERROR, G_IO_ERROR_CANCELLED))
    return;
  self->listing = FALSE;
  if (self->list_again)
    {
      list_tokens (self);
      return;
    }
  if (tokens == NULL)
    {
      toast (self, error->message);
      return;
    }

  for (guint i = 0; i < self->token_rows->len; i++)
    adw_preferences_group_remove (ADW_PREFERENCES_GROUP (self), g_ptr_array_index (self->token_rows, i));
  g_ptr_array_set_size (self->token_rows, 0);

  for (guint i = 0; i < tokens->len; i++)
    {
      GtkWidget *row = token_row_new (self, g_ptr_array_index (tokens, i));

      g_ptr_array_add (self->token_rows, row);
      adw_preferences_group_add (ADW_PREFERENCES_GROUP (self), row);
    }
  self->loaded = TRUE;
}

static void
list_tokens (GkTokensGroup *self)
{
  if (self->backend == NULL)
    return;
  if (self->listing)
    {
      self->list_again = TRUE;
      return;
    }
  self->listing = TRUE;
  self->list_again = FALSE;
  gk_backend_list_tokens_async (self->backend, self->cancellable, list_done_cb, g_object_ref (self));
}

static gboolean
refresh_cb (gpointer user_data)
{
  list_tokens (user_data);
  return G_SOURCE_CONTINUE;
}

static void
gk_tokens_group_map (GtkWidget *widget)
{
  GkTokensGroup *self = GK_TOKENS_GROUP (widget);

  GTK_WIDGET_CLASS (gk_tokens_group_parent_class)->map (widget);
  if (self->refresh_source == 0)
    self->refresh_source = g_timeout_add_seconds (REFRESH_INTERVAL_S, refresh_cb, self);
  list_tokens (self);
}

static void
gk_tokens_group_unmap (GtkWidget *widget)
{
  GkTokensGroup *self = GK_TOKENS_GROUP (widget);

  g_clear_handle_id (&self->refresh_source, g_source_remove);
  GTK_WIDGET_CLASS (gk_tokens_group_parent_class)->unmap (widget);
}

/* Public */

void
gk_tokens_group_set_backend (GkTokensGroup *self,
                             GkBackend     *backend)
{
  g_return_if_fail (GK_IS_TOKENS_GROUP (self));

  g_return_if_fail (backend == NULL || GK_IS_BACKEND (backend));

  if (self->backend != NULL && self->backend != backend)
    {
      /* What was asked of the old backend is of no use any more. */
      g_cancellable_cancel (self->cancellable);
      g_object_unref (self->cancellable);
      self->cancellable = g_cancellable_new ();
      self->listing = self->list_again = self->creating = FALSE;
    }
  if (!gk_backend_set_watched (&self->backend, backend, G_CALLBACK (list_tokens), self))
    return;
  update_create_button (self);
  list_tokens (self);
}

void
gk_tokens_group_set_port (GkTokensGroup *self,
                          guint          port,
                          gboolean       running)
{
  g_return_if_fail (GK_IS_TOKENS_GROUP (self));

  self->port = port;
  update_url (self);
  adw_preferences_row_set_title (ADW_PREFERENCES_ROW (self->url_row),
                                 running ? _("Gateway URL") : _("Gateway URL (when it runs)"));
}

const char *
gk_tokens_group_get_url (GkTokensGroup *self)
{
  g_return_val_if_fail (GK_IS_TOKENS_GROUP (self), NULL);

  return self->url;
}

gboolean
gk_tokens_group_get_loaded (GkTokensGroup *self)
{
  g_return_val_if_fail (GK_IS_TOKENS_GROUP (self), FALSE);

  return self->loaded;
}

GtkWidget *
gk_tokens_group_new (void)
{
  return g_object_new (GK_TYPE_TOKENS_GROUP, NULL);
}

static void
gk_tokens_group_dispose (GObject *object)
{
  GkTokensGroup *self = GK_TOKENS_GROUP (object);

  g_cancellable_cancel (self->cancellable);
  g_clear_handle_id (&self->refresh_source, g_source_remove);
  if (self->new_token != NULL)
    gk_crypto_wipe_string (g_steal_pointer (&self->new_token));
  gk_backend_set_watched (&self->backend, NULL, NULL, self);

  G_OBJECT_CLASS (gk_tokens_group_parent_class)->dispose (object);
}

static void
gk_tokens_group_finalize (GObject *object)
{
  GkTokensGroup *self = GK_TOKENS_GROUP (object);

  g_clear_object (&self->cancellable);
  g_clear_pointer (&self->token_rows, g_ptr_array_unref);
  g_free (self->url);

  G_OBJECT_CLASS (gk_tokens_group_parent_class)->finalize (object);
}

static void
gk_tokens_group_class_init (GkTokensGroupClass *klass)
{
  GObjectClass *object_class = G_OBJECT_CLASS (klass);
  GtkWidgetClass *widget_class = GTK_WIDGET_CLASS (klass);

  object_class->dispose = gk_tokens_group_dispose;
  object_class->finalize = gk_tokens_group_finalize;
  widget_class->map = gk_tokens_group_map;
  widget_class->unmap = gk_tokens_group_unmap;
}

static void
gk_tokens_group_init (GkTokensGroup *self)
{
  AdwPreferencesGroup *group = ADW_PREFERENCES_GROUP (self);
  GtkWidget *button;

  self->cancellable = g_cancellable_new ();
  self->token_rows = g_ptr_array_new ();
  self->port = GK_DEFAULT_GATEWAY_PORT;

  adw_preferences_group_set_title (group, _("Client Tokens"));
  adw_preferences_group_set_description (group,
                                         _("Programs send a client token as their API key. Each "
                                           "token's name is the user in the usage log."));

  self->url_row = adw_action_row_new ();
  gtk_widget_set_name (self->url_row, "gateway-url");
  adw_preferences_row_set_title (ADW_PREFERENCES_ROW (self->url_row), _("Gateway URL"));
  button = copy_button_new ("copy-url", _("Copy the URL"));
  g_signal_connect (button, "clicked", G_CALLBACK (copy_url_cb), self);
  adw_action_row_add_suffix (ADW_ACTION_ROW (self->url_row), button);
  adw_preferences_group_add (group, self->url_row);

  adw_preferences_group_add (group, snippet_row_new (self, SNIPPET_CURL, "curl",
                                                     _("Example for the command line"),
                                                     "copy-curl"));
  adw_preferences_group_add (group, snippet_row_new (self, SNIPPET_PYTHON, "Python",
                                                     _("Example with google-genai"),
                                                     "copy-python"));
  adw_preferences_group_add (group, snippet_row_new (self, SNIPPET_JAVASCRIPT, "JavaScript",
                                                     _("Example with @google/genai"),
                                                     "copy-javascript"));
  update_url (self);

  self->name_row = adw_entry_row_new ();
  gtk_widget_set_name (self->name_row, "token-name");
  adw_preferences_row_set_title (ADW_PREFERENCES_ROW (self->name_row), _("New Token Name"));
  self->create_button = gtk_button_new_with_mnemonic (_("C_reate"));
  gtk_widget_set_name (self->create_button, "create-token");
  gtk_widget_set_valign (self->create_button, GTK_ALIGN_CENTER);
  gtk_widget_add_css_class (self->create_button, "suggested-action");
  g_signal_connect_swapped (self->create_button, "clicked", G_CALLBACK (create_cb), self);
  adw_entry_row_add_suffix (ADW_ENTRY_ROW (self->name_row), self->create_button);
  g_signal_connect_swapped (self->name_row, "changed", G_CALLBACK (name_changed_cb), self);
  g_signal_connect_swapped (self->name_row, "entry-activated", G_CALLBACK (create_cb), self);
  adw_preferences_group_add (group, self->name_row);

  self->new_token_row = new_token_row_new (self);
  adw_preferences_group_add (group, self->new_token_row);

  update_create_button (self);
}
