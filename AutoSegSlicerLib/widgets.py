"""Small Qt conveniences shared by the AutoSeg module widgets."""

import qt


def fillTable(table, rows, columns=None):
    """Replace the content of a QTableWidget with ``rows`` (sequences of text); set headers when given."""
    if columns is not None:
        table.setColumnCount(len(columns))
        table.setHorizontalHeaderLabels(list(columns))
    table.setRowCount(len(rows))
    for row, values in enumerate(rows):
        for column, text in enumerate(values):
            table.setItem(row, column, qt.QTableWidgetItem(str(text)))
    table.resizeColumnsToContents()
