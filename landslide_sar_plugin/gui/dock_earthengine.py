"""The dock's Google Earth Engine actions: list the scenes of an AOI and sign in (a mixin of the dock)."""

from __future__ import annotations

from qgis.PyQt.QtCore import QCoreApplication
from qgis.PyQt.QtWidgets import QTableWidgetItem


def tr(text: str) -> str:
    return QCoreApplication.translate("LandslideDock", text)


class EarthEngineMixin:
    """Earth Engine listing and sign-in; the dock supplies the widgets, ``_start_task`` and the messages."""

    def _earthengine_problem(self, params, method: str) -> str:
        if params.aoi is None:
            return tr("Earth Engine needs an area of interest: draw a rectangle, use the map extent or a polygon "
                      "layer.")
        if not self.ee_project.text().strip():
            return tr("Enter the Google Cloud project id registered for Earth Engine.")
        if method != "a_ratio":
            return tr("Earth Engine runs the A_ratio method; run the model on the downloaded scenes afterwards.")
        return ""

    def _ee_transport(self):
        return self.ee_transport_factory() if self.ee_transport_factory is not None else None

    def start_ee_listing(self) -> None:
        if self.task is not None:
            return
        try:
            params = self.collect_params()
        except ValueError as exc:
            self.show_error(str(exc))
            return
        problem = self._earthengine_problem(params, "a_ratio")
        if problem:
            self.show_error(problem)
            return
        project, transport = self.ee_project.text().strip(), self._ee_transport()
        self.save_settings()

        def work(progress, is_cancelled):
            from ..core.earthengine import EarthEngineTransport, initialize, list_scenes

            progress(0.1, "connecting to Earth Engine")
            use = transport
            if use is None:
                initialize(project)
                use = EarthEngineTransport()
            progress(0.3, "listing Sentinel-1 scenes")
            return list_scenes(params, transport=use)

        self._start_task(tr("Listing Earth Engine scenes"), work, self._ee_listing_done)

    def _ee_listing_done(self, task) -> None:
        self._task_finished()
        if task.error is not None:
            self.show_error(tr("Earth Engine listing failed: {msg}").format(msg=task.error), task.error_traceback)
            return
        if task.result is None:
            return
        self.ee_listing = task.result
        self.scene_table.setRowCount(0)
        for row_data in self.ee_listing.table_rows():
            row = self.scene_table.rowCount()
            self.scene_table.insertRow(row)
            values = [row_data["acquisition_start"].replace("T", " ")[:16], row_data["orbit_pass"].title(),
                      str(row_data["relative_orbit"]), row_data["role"] if row_data["used"] else tr("unused"),
                      row_data["scene_id"], "ESA GRD (Earth Engine)"]
            for col, value in enumerate(values):
                self.scene_table.setItem(row, col, QTableWidgetItem(value))
        self._set_summary("\n".join(self.ee_listing.summary_lines()))
        self.progress.setValue(100)

    def start_ee_sign_in(self) -> None:
        if self.task is not None:
            return

        def work(progress, is_cancelled):
            from ..core.earthengine import authenticate_interactive

            progress(0.1, "waiting for the Google sign-in in your browser")
            return authenticate_interactive()

        self._start_task(tr("Signing in to Earth Engine"), work, self._ee_sign_in_done)

    def _ee_sign_in_done(self, task) -> None:
        self._task_finished()
        if task.error is not None:
            self.show_error(tr("Sign-in failed: {msg}").format(msg=task.error))
        elif not task.cancelled_by_user:
            self.show_info(tr("Signed in to Earth Engine; the sign-in is kept for later sessions."))
