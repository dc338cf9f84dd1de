/* gk-export-button.c: "Export" with a menu of formats, the file chooser
 * (GtkFileChooserNative: the portal inside the Flatpak), and a progress
 * bar with Cancel while a worker thread writes the file.
 *
 * The page that holds it knows what to export: on "export" it copies what
 * it shows (the period and filters, a database) for the worker and calls
 * gk_export_button_run(). The outcome is a toast in the window.
 *
 * SPDX-License-Identifier: GPL-3.0-or-later
 */
#include "config.h"

#include <adwaita.h>
#include <glib/gi18n.h>

#include "gk-export-button.h"
#include "gk-format.h"

/* How often the row count is shown while exporting. */
#define PROGRESS_INTERVAL_MS 100

#define XLSX_MIME_TYPE "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"

struct _GkExportButton
{
  GtkBox          parent_instance;

  GtkWidget      *menu_button;
  GtkWidget      *progress_box;
  GtkProgressBar *progress;
  GtkWidget      *cancel_button;

  char           *title;
  char           *file_name;
  GCancellable   *cancellable;  /* non-NULL while exporting */
  guint           timer;
  gpointer        rows;         /* atomic: rows written so far, a gsize */
  char           *message;
};

G_DEFINE_FINAL_TYPE (GkExportButton, gk_export_button, GTK_TYPE_BOX)

enum {
  PROP_0,
  PROP_TITLE,
  PROP_FILE_NAME,
  PROP_EXPORTING,
  N_PROPS
};

enum {
  SIGNAL_EXPORT,
  N_SIGNALS
};

static GParamSpec *properties[N_PROPS];
static guint signals[N_SIGNALS];

typedef struct
{
  GkExportJobFunc  func;
  gpointer         job;
  GDestroyNotify   job_free;
  GkExportFormat   format;
  char            *path;
  GkExportButton  *button;   /* for the row counter only; kept alive by the task */
  guint64          rows;
} Export;

static void
export_free (Export *export)
{
  if (export->job_free != NULL)
    export->job_free (export->job);
  g_free (export->path);
  g_free (export);
}

/* Helpers */

static const char *
format_extension (GkExportFormat format)
{
  return format == GK_EXPORT_XLSX ? ".xlsx" : ".csv";
}

static void
set_exporting (GkExportButton *self,
               gboolean        exporting)
{
  gtk_widget_set_sensitive (self->menu_button, !exporting);
  gtk_widget_set_visible (self->progress_box, exporting);
  gtk_progress_bar_set_text (self->progress, NULL);
  g_object_notify_by_pspec (G_OBJECT (self), properties[PROP_EXPORTING]);
}

static void
show_message (GkExportButton *self,
              char           *message)
{
  GtkWidget *overlay = gtk_widget_get_ancestor (GTK_WIDGET (self), ADW_TYPE_TOAST_OVERLAY);

  g_free (self->message);
  self->message = message;
  if (overlay != NULL)
    adw_toast_overlay_add_toast (ADW_TOAST_OVERLAY (overlay), adw_toast_new (message));
}

/* Callbacks */

static void
export_progress_cb (guint64  rows,
                    gpointer user_data)
{
  Export *export = user_data;

  g_atomic_pointer_set (&export->button->rows, GSIZE_TO_POINTER ((gsize) rows));
}

static void
export_thread (GTask        *task,
               gpointer      source_object,
               gpointer      task_data,
               GCancellable *cancellable)
{
  Export *export = task_data;
  GError *error = NULL;

  if (export->func (export->job, export->format, export->path, export_progress_cb, export,
                    cancellable, &export->rows, &error))
    g_task_return_boolean (task, TRUE);
  else
    g_task_return_error (task, error);
}

static gboolean
progress_tick_cb (gpointer user_data)
{
  GkExportButton *self = user_data;
  gsize rows = GPOINTER_TO_SIZE (g_atomic_pointer_get (&self->rows));
  g_autofree char *count = gk_format_count ((gint64) rows);
  /* Translators: the progress of an export, "12,345 rows". */
  g_autofree char *text = rows > 0 ? g_strdup_printf (_("%s rows"), count)
                                   : g_strdup (_("Exporting…"));

  gtk_progress_bar_pulse (self->progress);
  gtk_progress_bar_set_text (self->progress, text);
  return G_SOURCE_CONTINUE;
}

static void
export_done_cb (GObject      *object,
                GAsyncResult *result,
                gpointer      user_data)
{
  GkExportButton *self = GK_EXPORT_BUTTON (object);
  Export *export = g_task_get_task_data (G_TASK (result));
  g_autoptr(GError) error = NULL;
  gboolean ok = g_task_propagate_boolean (G_TASK (result), &error);

  g_clear_handle_id (&self->timer, g_source_remove);
  g_clear_object (&self->cancellable);
  /* Disposed while the export ran: nothing left to show it in. */
  if (self->progress_box != NULL)
    {
      set_exporting (self, FALSE);
      if (ok)
        {
          g_autofree char *count = gk_format_count ((gint64) export->rows);

          show_message (self, g_strdup_printf (_("Exported %s rows"), count));
        }
      else if (g_error_matches (error, G_IO_ERROR, G_IO_ERROR_CANCELLED))
        show_message (self, g_strdup (_("Export cancelled")));
      else
        show_message (self, g_strdup (error->message));
    }
  g_object_unref (self);
}

static void
cancel_clicked_cb (GkExportButton *self)
{
  g_cancellable_cancel (self->cancellable);
}

static void
chooser_response_cb (GtkNativeDialog *dialog,
                     int              response,
                     gpointer         user_data)
{
  GkExportButton *self = user_data;
  GkExportFormat format = GPOINTER_TO_INT (g_object_get_data (G_OBJECT (dialog), "format"));

  if (response == GTK_RESPONSE_ACCEPT)
    {
      g_autoptr(GFile) file = gtk_file_chooser_get_file (GTK_FILE_CHOOSER (dialog));
      g_autofree char *path = file != NULL ? g_file_get_path (file) : NULL;

      if (path != NULL)
        gk_export_button_export (self, format, path);
    }
  g_object_unref (dialog);
  g_object_unref (self);
}

/* "export.as" ("csv" or "xlsx"): asks where, through the file chooser
 * portal inside the Flatpak. */
static void
export_as_cb (GtkWidget  *widget,
              const char *action_name,
              GVariant   *parameter)
{
  GkExportButton *self = GK_EXPORT_BUTTON (widget);
  GkExportFormat format = g_str_equal (g_variant_get_string (parameter, NULL), "xlsx")
                            ? GK_EXPORT_XLSX
                            : GK_EXPORT_CSV;
  GtkRoot *root = gtk_widget_get_root (widget);
  g_autoptr(GtkFileFilter) filter = gtk_file_filter_new ();
  g_autofree char *name = g_strconcat (self->file_name, format_extension (format), NULL);
  GtkFileChooserNative *native;

  native = gtk_file_chooser_native_new (self->title,
                                        GTK_IS_WINDOW (root) ? GTK_WINDOW (root) : NULL,
                                        GTK_FILE_CHOOSER_ACTION_SAVE, _("_Export"),
                                        _("_Cancel"));
  gtk_native_dialog_set_modal (GTK_NATIVE_DIALOG (native), TRUE);
  if (format == GK_EXPORT_XLSX)
    {
      gtk_file_filter_set_name (filter, _("Excel workbook"));
      gtk_file_filter_add_pattern (filter, "*.xlsx");
      gtk_file_filter_add_mime_type (filter, XLSX_MIME_TYPE);
    }
  else
    {
      gtk_file_filter_set_name (filter, _("CSV (comma-separated values)"));
      gtk_file_filter_add_pattern (filter, "*.csv");
      gtk_file_filter_add_mime_type (filter, "text/csv");
    }
  gtk_file_chooser_add_filter (GTK_FILE_CHOOSER (native), filter);
  gtk_file_chooser_set_current_name (GTK_FILE_CHOOSER (native), name);
  g_object_set_data (G_OBJECT (native), "format", GINT_TO_POINTER (format));
  g_signal_connect (native, "response", G_CALLBACK (chooser_response_cb), g_object_ref (self));
  gtk_native_dialog_show (GTK_NATIVE_DIALOG (native));
}

/* Overrides */

static void
gk_export_button_dispose (GObject *object)
{
  GkExportButton *self = GK_EXPORT_BUTTON (object);

  /* The children go with GtkBox's dispose; an export still running
   * finds these cleared when it ends. */
  g_cancellable_cancel (self->cancellable);
  g_clear_handle_id (&self->timer, g_source_remove);
  self->menu_button = NULL;
  self->progress_box = NULL;

  G_OBJECT_CLASS (gk_export_button_parent_class)->dispose (object);
}

static void
gk_export_button_finalize (GObject *object)
{
  GkExportButton *self = GK_EXPORT_BUTTON (object);

  g_free (self->title);
  g_free (self->file_name);
  g_free (self->message);

  G_OBJECT_CLASS (gk_export_button_parent_class)->finalize (object);
}

static void
gk_export_button_get_property (GObject    *object,
                               guint       prop_id,
                               GValue     *value,
                               GParamSpec *pspec)
{
  GkExportButton *self = GK_EXPORT_BUTTON (object);

  switch (prop_id)
    {
    case PROP_TITLE:
      g_value_set_string (value, self->title);
      break;
    case PROP_FILE_NAME:
      g_value_set_string (value, self->file_name);
      break;
    case PROP_EXPORTING:
      g_value_set_boolean (value, gk_export_button_get_exporting (self));
      break;
    default:
      G_OBJECT_WARN_INVALID_PROPERTY_ID (object, prop_id, pspec);
    }
}

static void
gk_export_button_set_property (GObject      *object,
                               guint         prop_id,
                               const GValue *value,
                               GParamSpec   *pspec)
{
  GkExportButton *self = GK_EXPORT_BUTTON (object);

  switch (prop_id)
    {
    case PROP_TITLE:
      g_free (self->title);
      self->title = g_value_dup_string (value);
      break;
    case PROP_FILE_NAME:
      g_free (self->file_name);
      self->file_name = g_value_dup_string (value);
      break;
    default:
      G_OBJECT_WARN_INVALID_PROPERTY_ID (object, prop_id, pspec);
    }
}

static void
gk_export_button_class_init (GkExportButtonClass *klass)
{
  GObjectClass *object_class = G_OBJECT_CLASS (klass);
  GtkWidgetClass *widget_class = GTK_WIDGET_CLASS (klass);

  object_class->dispose = gk_export_button_dispose;
  object_class->finalize = gk_export_button_finalize;
  object_class->get_property = gk_export_button_get_property;
  object_class->set_property = gk_export_button_set_property;

  /* The file chooser's title ("Export Usage"). */
  properties[PROP_TITLE] =
    g_param_spec_string ("title", NULL, NULL, NULL,
                         G_PARAM_READWRITE | G_PARAM_CONSTRUCT_ONLY | G_PARAM_STATIC_STRINGS);
  /* The file name offered, without its extension ("usage"). */
  properties[PROP_FILE_NAME] =
    g_param_spec_string ("file-name", NULL, NULL, "export",
                         G_PARAM_READWRITE | G_PARAM_CONSTRUCT_ONLY | G_PARAM_STATIC_STRINGS);
  properties[PROP_EXPORTING] =
    g_param_spec_boolean ("exporting", NULL, NULL, FALSE,
                          G_PARAM_READABLE | G_PARAM_EXPLICIT_NOTIFY | G_PARAM_STATIC_STRINGS);
  g_object_class_install_properties (object_class, N_PROPS, properties);

  /**
   * GkExportButton::export:
   * @format: a #GkExportFormat
   * @path: the file to write
   *
   * The user chose a file: the page calls gk_export_button_run().
   */
  signals[SIGNAL_EXPORT] =
    g_signal_new ("export", G_TYPE_FROM_CLASS (klass), G_SIGNAL_RUN_LAST, 0, NULL, NULL, NULL,
                  G_TYPE_NONE, 2, G_TYPE_INT, G_TYPE_STRING);

  gtk_widget_class_install_action (widget_class, "export.as", "s", export_as_cb);
}

static void
gk_export_button_init (GkExportButton *self)
{
  g_autoptr(GMenu) menu = g_menu_new ();

  gtk_box_set_spacing (GTK_BOX (self), 6);

  g_menu_append (menu, _("Export as _CSV…"), "export.as::csv");
  g_menu_append (menu, _("Export as _Excel Workbook…"), "export.as::xlsx");
  self->menu_button = gtk_menu_button_new ();
  gtk_widget_set_name (self->menu_button, "export");
  gtk_menu_button_set_label (GTK_MENU_BUTTON (self->menu_button), _("_Export"));
  gtk_menu_button_set_use_underline (GTK_MENU_BUTTON (self->menu_button), TRUE);
  gtk_menu_button_set_menu_model (GTK_MENU_BUTTON (self->menu_button), G_MENU_MODEL (menu));
  gtk_box_append (GTK_BOX (self), self->menu_button);

  self->progress_box = gtk_box_new (GTK_ORIENTATION_HORIZONTAL, 6);
  gtk_widget_set_visible (self->progress_box, FALSE);
  self->progress = GTK_PROGRESS_BAR (gtk_progress_bar_new ());
  gtk_progress_bar_set_show_text (self->progress, TRUE);
  gtk_widget_set_valign (GTK_WIDGET (self->progress), GTK_ALIGN_CENTER);
  gtk_box_append (GTK_BOX (self->progress_box), GTK_WIDGET (self->progress));
  self->cancel_button = gtk_button_new_with_mnemonic (_("_Cancel"));
  gtk_widget_set_name (self->cancel_button, "export-cancel");
  g_signal_connect_swapped (self->cancel_button, "clicked", G_CALLBACK (cancel_clicked_cb),
                            self);
  gtk_box_append (GTK_BOX (self->progress_box), self->cancel_button);
  gtk_box_append (GTK_BOX (self), self->progress_box);
}

/* Public API */

/**
 * gk_export_button_export:
 *
 * What choosing @path in the file chooser does: emits "export".
 */
void
gk_export_button_export (GkExportButton *self,
                         GkExportFormat  format,
                         const char     *path)
{
  g_return_if_fail (GK_IS_EXPORT_BUTTON (self));
  g_return_if_fail (path != NULL);

  if (self->cancellable == NULL)
    g_signal_emit (self, signals[SIGNAL_EXPORT], 0, (int) format, path);
}

/**
 * gk_export_button_run:
 *
 * Runs @func on @job in a worker thread (taking @job), showing the rows
 * written and Cancel until it ends; then its outcome as a toast.
 */
void
gk_export_button_run (GkExportButton  *self,
                      GkExportFormat   format,
                      const char      *path,
                      GkExportJobFunc  func,
                      gpointer         job,
                      GDestroyNotify   job_free)
{
  g_autoptr(GTask) task = NULL;
  Export *export;

  g_return_if_fail (GK_IS_EXPORT_BUTTON (self));
  g_return_if_fail (path != NULL);
  g_return_if_fail (func != NULL);
  g_return_if_fail (self->cancellable == NULL);

  export = g_new0 (Export, 1);
  export->func = func;
  export->job = job;
  export->job_free = job_free;
  export->format = format;
  export->path = g_strdup (path);
  export->button = self;
  g_atomic_pointer_set (&self->rows, NULL);
  self->cancellable = g_cancellable_new ();
  self->timer = g_timeout_add (PROGRESS_INTERVAL_MS, progress_tick_cb, self);
  set_exporting (self, TRUE);

  task = g_task_new (g_object_ref (self), self->cancellable, export_done_cb, NULL);
  g_task_set_source_tag (task, gk_export_button_run);
  g_task_set_task_data (task, export, (GDestroyNotify) export_free);
  g_task_run_in_thread (task, export_thread);
}

gboolean
gk_export_button_get_exporting (GkExportButton *self)
{
  g_return_val_if_fail (GK_IS_EXPORT_BUTTON (self), FALSE);

  return self->cancellable != NULL;
}

const char *
gk_export_button_get_message (GkExportButton *self)
{
  g_return_val_if_fail (GK_IS_EXPORT_BUTTON (self), NULL);

  return self->message;
}
