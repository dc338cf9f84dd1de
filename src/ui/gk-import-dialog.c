/* gk-import-dialog.c
 *
 * The text (pasted, or read from a file) goes to a worker thread through
 * the backend, which runs gk_key_import(); the dialog shows the per-line
 * report. The pasted text is wiped from the buffer after an import, and a
 * file's text is kept only until then: keys are never written anywhere
 * else.
 *
 * SPDX-License-Identifier: GPL-3.0-or-later
 */
#include "config.h"

#include <glib/gi18n.h>
#include <string.h>

#include "gk-import-dialog.h"

struct _GkImportDialog
{
  AdwWindow     parent_instance;

  GkBackend    *backend;
  GCancellable *cancellable;
  gboolean      busy;
  char         *file_text;     /* wiped when freed */
  gsize         file_len;
  GtkFileChooserNative *chooser;

  GtkWidget    *paste_view;
  GtkWidget    *file_label;
  GtkWidget    *preview_button;
  GtkWidget    *import_button;
  GtkWidget    *file_button;
  GtkWidget    *summary_label;
  GtkWidget    *report_list;
};

G_DEFINE_FINAL_TYPE (GkImportDialog, gk_import_dialog, ADW_TYPE_WINDOW)

enum {
  IMPORTED,
  N_SIGNALS
};

static guint signals[N_SIGNALS];

typedef struct
{
  char     *text;
  gsize     len;
  gboolean  dry_run;
} ImportJob;

static void
import_job_free (ImportJob *job)
{
  gk_crypto_wipe (job->text, job->len);
  g_free (job->text);
  g_free (job);
}

static void
clear_file_text (GkImportDialog *self)
{
  if (self->file_text != NULL)
    {
      gk_crypto_wipe (self->file_text, self->file_len);
      g_clear_pointer (&self->file_text, g_free);
      self->file_len = 0;
    }
  gtk_label_set_text (GTK_LABEL (self->file_label), "");
}

static void
clear_paste (GkImportDialog *self)
{
  GtkTextBuffer *buffer = gtk_text_view_get_buffer (GTK_TEXT_VIEW (self->paste_view));

  gtk_text_buffer_set_text (buffer, "", 0);
}

static gboolean
has_input (GkImportDialog *self)
{
  GtkTextBuffer *buffer = gtk_text_view_get_buffer (GTK_TEXT_VIEW (self->paste_view));

  return self->file_text != NULL || gtk_text_buffer_get_char_count (buffer) > 0;
}

static void
update_buttons (GkImportDialog *self)
{
  gboolean ready = !self->busy && has_input (self);

  gtk_widget_set_sensitive (self->preview_button, ready);
  gtk_widget_set_sensitive (self->import_button, ready);
  gtk_widget_set_sensitive (self->file_button, !self->busy);
  gtk_text_view_set_editable (GTK_TEXT_VIEW (self->paste_view), !self->busy);
}

static gpointer
import_job (const GkBackendRefs  *refs,
            gpointer              data,
            GError              **error)
{
  ImportJob *job = data;
  GkKeyStore *store = refs->key_store;

  if (store == NULL)
    {
      g_set_error_literal (error, G_IO_ERROR, G_IO_ERROR_FAILED,
                           _("The keys are locked. Unlock them first."));
      return NULL;
    }
  return gk_key_import (store, job->text, (gssize) job->len, job->dry_run, error);
}

static void
show_report (GkImportDialog       *self,
             const GkImportReport *report)
{
  GtkWidget *child;
  g_autofree char *summary = NULL;

  while ((child = gtk_widget_get_first_child (self->report_list)) != NULL)
    gtk_list_box_remove (GTK_LIST_BOX (self->report_list), child);

  for (guint i = 0; i < report->lines->len; i++)
    {
      const GkImportLine *line = report->lines->pdata[i];
      GtkWidget *row = adw_action_row_new ();
      GtkWidget *badge = gtk_label_new (gk_import_result_get_label (line->result));
      g_autofree char *subtitle = NULL;

      /* Translators: the line of the imported text, the key's last
       * characters ("…wxyz"), then why it was skipped, if it was. */
      if (line->message != NULL)
        subtitle = g_strdup_printf (_("Line %u · %s · %s"), line->line, line->key_hint,
                                    line->message);
      else
        subtitle = g_strdup_printf (_("Line %u · %s"), line->line, line->key_hint);
      adw_preferences_row_set_title (ADW_PREFERENCES_ROW (row), line->name);
      adw_preferences_row_set_use_markup (ADW_PREFERENCES_ROW (row), FALSE);
      adw_action_row_set_subtitle (ADW_ACTION_ROW (row), subtitle);
      gtk_widget_add_css_class (badge, "gk-badge");
      gtk_widget_add_css_class (badge, line->result == GK_IMPORT_INVALID ? "error"
                                       : line->result == GK_IMPORT_DUPLICATE ? "dim-label"
                                       : "success");
      gtk_widget_set_valign (badge, GTK_ALIGN_CENTER);
      adw_action_row_add_suffix (ADW_ACTION_ROW (row), badge);
      gtk_list_box_append (GTK_LIST_BOX (self->report_list), row);
    }
  gtk_widget_set_visible (self->report_list, report->lines->len > 0);

  if (report->dry_run)
    summary = g_strdup_printf (_("Preview: %u would be added, %u skipped, %u invalid. Nothing "
                                 "was changed."),
                               report->added, report->duplicates, report->invalid);
  else
    summary = g_strdup_printf (_("Added %u, skipped %u, %u invalid."), report->added,
                               report->duplicates, report->invalid);
  gtk_label_set_text (GTK_LABEL (self->summary_label), summary);
  gtk_widget_set_visible (self->summary_label, TRUE);
}

static void
import_done_cb (GObject      *object,
                GAsyncResult *result,
                gpointer      user_data)
{
  g_autoptr(GkImportDialog) self = user_data;
  g_autoptr(GError) error = NULL;
  g_autoptr(GkImportReport) report = NULL;

  report = gk_backend_run_finish (GK_BACKEND (object), result, &error);
  if (g_error_matches (error, G_IO_ERROR, G_IO_ERROR_CANCELLED))
    return;

  self->busy = FALSE;
  if (report == NULL)
    {
      gtk_label_set_text (GTK_LABEL (self->summary_label), error->message);
      gtk_widget_set_visible (self->summary_label, TRUE);
      gtk_widget_set_visible (self->report_list, FALSE);
    }
  else
    {
      show_report (self, report);
      if (!report->dry_run)
        {
          /* Imported: the keys live encrypted in the pool now, nowhere
           * else. */
          clear_paste (self);
          clear_file_text (self);
          gk_backend_notify_changed (self->backend);
          g_signal_emit (self, signals[IMPORTED], 0, report->added);
        }
    }
  update_buttons (self);
}

static void
start (GkImportDialog *self,
       gboolean        dry_run)
{
  ImportJob *job;

  if (self->busy || !has_input (self))
    return;

  job = g_new0 (ImportJob, 1);
  job->dry_run = dry_run;
  if (self->file_text != NULL)
    {
      job->text = g_memdup2 (self->file_text, self->file_len + 1);
      job->len = self->file_len;
    }
  else
    {
      GtkTextBuffer *buffer = gtk_text_view_get_buffer (GTK_TEXT_VIEW (self->paste_view));
      GtkTextIter begin, end;

      gtk_text_buffer_get_bounds (buffer, &begin, &end);
      job->text = gtk_text_buffer_get_text (buffer, &begin, &end, FALSE);
      job->len = strlen (job->text);
    }

  self->busy = TRUE;
  update_buttons (self);
  gk_backend_run_async (self->backend, import_job, job, (GDestroyNotify) import_job_free,
                        (GDestroyNotify) gk_import_report_free, self->cancellable,
                        import_done_cb, g_object_ref (self));
}

static void
preview_clicked_cb (GkImportDialog *self)
{
  start (self, TRUE);
}

static void
import_clicked_cb (GkImportDialog *self)
{
  start (self, FALSE);
}

void
gk_import_dialog_set_file_text (GkImportDialog *self,
                                const char     *display_name,
                                char           *text,
                                gsize           len)
{
  g_autofree char *label = NULL;

  g_return_if_fail (GK_IS_IMPORT_DIALOG (self));
  g_return_if_fail (text != NULL);

  clear_file_text (self);
  self->file_text = text;
  self->file_len = len;
  /* Translators: %s is a file name; its keys are imported instead of the
   * pasted text. */
  label = g_strdup_printf (_("Importing from “%s”"), display_name);
  gtk_label_set_text (GTK_LABEL (self->file_label), label);
  update_buttons (self);
  /* Show at once what the file holds. */
  start (self, TRUE);
}

static gpointer
read_file_job (const GkBackendRefs  *refs,
               gpointer              data,
               GError              **error)
{
  GFile *file = data;
  char *contents = NULL;
  gsize len = 0;
  GBytes *bytes;

  if (!g_file_load_contents (file, NULL, &contents, &len, NULL, error))
    return NULL;
  /* Handed over as is; the dialog wipes it. */
  bytes = g_bytes_new_take (contents, len);
  return bytes;
}

static void
wipe_bytes (GBytes *bytes)
{
  gsize len;
  gpointer data = (gpointer) g_bytes_get_data (bytes, &len);

  gk_crypto_wipe (data, len);
  g_bytes_unref (bytes);
}

static void
read_file_done_cb (GObject      *object,
                   GAsyncResult *result,
                   gpointer      user_data)
{
  g_autoptr(GkImportDialog) self = user_data;
  g_autoptr(GError) error = NULL;
  GBytes *bytes;
  gsize len = 0;
  const char *data;
  char *text;

  bytes = gk_backend_run_finish (GK_BACKEND (object), result, &error);
  if (g_error_matches (error, G_IO_ERROR, G_IO_ERROR_CANCELLED))
    return;
  self->busy = FALSE;
  if (bytes == NULL)
    {
      gtk_label_set_text (GTK_LABEL (self->summary_label), error->message);
      gtk_widget_set_visible (self->summary_label, TRUE);
      update_buttons (self);
      return;
    }

  data = g_bytes_get_data (bytes, &len);
  text = g_malloc (len + 1);
  memcpy (text, data, len);
  text[len] = '\0';
  wipe_bytes (bytes);
  gk_import_dialog_set_file_text (self, g_object_get_data (G_OBJECT (self), "gk-file-name"),
                                  text, len);
}

static void
chooser_response_cb (GkImportDialog       *self,
                     int                   response,
                     GtkFileChooserNative *chooser)
{
  g_autoptr(GFile) file = NULL;

  if (response == GTK_RESPONSE_ACCEPT)
    file = gtk_file_chooser_get_file (GTK_FILE_CHOOSER (chooser));
  g_clear_object (&self->chooser);
  if (file == NULL)
    return;

  g_object_set_data_full (G_OBJECT (self), "gk-file-name", g_file_get_basename (file), g_free);
  self->busy = TRUE;
  update_buttons (self);
  gk_backend_run_async (self->backend, read_file_job, g_object_ref (file), g_object_unref,
                        (GDestroyNotify) wipe_bytes, self->cancellable, read_file_done_cb,
                        g_object_ref (self));
}

static void
file_clicked_cb (GkImportDialog *self)
{
  if (self->chooser != NULL)
    return;
  self->chooser = gtk_file_chooser_native_new (_("Import Keys From a File"), GTK_WINDOW (self),
                                               GTK_FILE_CHOOSER_ACTION_OPEN, _("_Open"),
                                               _("_Cancel"));
  g_signal_connect_object (self->chooser, "response", G_CALLBACK (chooser_response_cb), self,
                           G_CONNECT_SWAPPED);
  gtk_native_dialog_show (GTK_NATIVE_DIALOG (self->chooser));
}

static void
buffer_changed_cb (GkImportDialog *self)
{
  update_buttons (self);
}

static void
parent_destroyed_cb (GkImportDialog *self)
{
  gtk_window_set_transient_for (GTK_WINDOW (self), NULL);
  gtk_window_destroy (GTK_WINDOW (self));
}

static void
gk_import_dialog_dispose (GObject *object)
{
  GkImportDialog *self = GK_IMPORT_DIALOG (object);

  g_cancellable_cancel (self->cancellable);
  if (self->paste_view != NULL)
    clear_paste (self);
  if (self->chooser != NULL)
    gtk_native_dialog_destroy (GTK_NATIVE_DIALOG (self->chooser));
  g_clear_object (&self->chooser);
  gtk_widget_dispose_template (GTK_WIDGET (self), GK_TYPE_IMPORT_DIALOG);
  g_clear_object (&self->backend);

  G_OBJECT_CLASS (gk_import_dialog_parent_class)->dispose (object);
}

static void
gk_import_dialog_finalize (GObject *object)
{
  GkImportDialog *self = GK_IMPORT_DIALOG (object);

  if (self->file_text != NULL)
    {
      gk_crypto_wipe (self->file_text, self->file_len);
      g_free (self->file_text);
    }
  g_clear_object (&self->cancellable);

  G_OBJECT_CLASS (gk_import_dialog_parent_class)->finalize (object);
}

static void
gk_import_dialog_class_init (GkImportDialogClass *klass)
{
  GObjectClass *object_class = G_OBJECT_CLASS (klass);
  GtkWidgetClass *widget_class = GTK_WIDGET_CLASS (klass);

  object_class->dispose = gk_import_dialog_dispose;
  object_class->finalize = gk_import_dialog_finalize;

  /* The number of keys added. */
  signals[IMPORTED] = g_signal_new ("imported", G_TYPE_FROM_CLASS (klass), G_SIGNAL_RUN_LAST,
                                    0, NULL, NULL, NULL, G_TYPE_NONE, 1, G_TYPE_UINT);

  gtk_widget_class_set_template_from_resource (widget_class,
                                               "/io/github/geminikeys/GeminiKeys/ui/gk-import-dialog.ui");
  gtk_widget_class_bind_template_child (widget_class, GkImportDialog, paste_view);
  gtk_widget_class_bind_template_child (widget_class, GkImportDialog, file_label);
  gtk_widget_class_bind_template_child (widget_class, GkImportDialog, preview_button);
  gtk_widget_class_bind_template_child (widget_class, GkImportDialog, import_button);
  gtk_widget_class_bind_template_child (widget_class, GkImportDialog, file_button);
  gtk_widget_class_bind_template_child (widget_class, GkImportDialog, summary_label);
  gtk_widget_class_bind_template_child (widget_class, GkImportDialog, report_list);
  gtk_widget_class_bind_template_callback (widget_class, preview_clicked_cb);
  gtk_widget_class_bind_template_callback (widget_class, import_clicked_cb);
  gtk_widget_class_bind_template_callback (widget_class, file_clicked_cb);
  gtk_widget_class_add_binding_action (widget_class, GDK_KEY_Escape, 0, "window.close", NULL);
}

static void
gk_import_dialog_init (GkImportDialog *self)
{
  self->cancellable = g_cancellable_new ();
  gtk_widget_init_template (GTK_WIDGET (self));
  g_signal_connect_object (gtk_text_view_get_buffer (GTK_TEXT_VIEW (self->paste_view)), "changed",
                           G_CALLBACK (buffer_changed_cb), self, G_CONNECT_SWAPPED);
}

GkImportDialog *
gk_import_dialog_new (GtkWindow *parent,
                      GkBackend *backend)
{
  GkImportDialog *self;

  g_return_val_if_fail (GK_IS_BACKEND (backend), NULL);

  self = g_object_new (GK_TYPE_IMPORT_DIALOG, "transient-for", parent, NULL);
  self->backend = g_object_ref (backend);
  if (parent != NULL)
    g_signal_connect_object (parent, "destroy", G_CALLBACK (parent_destroyed_cb), self,
                             G_CONNECT_SWAPPED);
  return self;
}

gboolean
gk_import_dialog_get_busy (GkImportDialog *self)
{
  g_return_val_if_fail (GK_IS_IMPORT_DIALOG (self), FALSE);
  return self->busy;
}
