// Sorts the images table when a header is clicked. `#sort=KEY` or `#sort=KEY:desc` in the URL
// sorts on load. Sets data-ready on <html> once this script has run without throwing.
(function () {
  "use strict";
  var table = document.getElementById("images");
  var body = table.tBodies[0];
  var heads = table.tHead.rows[0].cells;

  function value(row, col, numeric) {
    var cell = row.cells[col];
    var v = cell.getAttribute("data-v");
    if (v === null) { v = cell.textContent; }
    if (v === "") { return null; }
    return numeric ? Number(v) : v.toLowerCase();
  }

  function sortBy(col, descending) {
    var head = heads[col];
    var numeric = head.getAttribute("data-type") === "num";
    var rows = Array.prototype.slice.call(body.rows);
    var keyed = rows.map(function (row, i) { return [value(row, col, numeric), i, row]; });
    keyed.sort(function (a, b) {
      if (a[0] === null || b[0] === null) {
        if (a[0] === b[0]) { return a[1] - b[1]; }
        return a[0] === null ? 1 : -1; // empty cells last, both ways
      }
      var c = a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0;
      if (descending) { c = -c; }
      return c !== 0 ? c : a[1] - b[1];
    });
    keyed.forEach(function (k) { body.appendChild(k[2]); });
    for (var i = 0; i < heads.length; i++) { heads[i].removeAttribute("aria-sort"); }
    head.setAttribute("aria-sort", descending ? "descending" : "ascending");
    document.documentElement.setAttribute("data-sorted",
      head.getAttribute("data-key") + (descending ? ":desc" : ":asc"));
  }

  function column(key) {
    for (var i = 0; i < heads.length; i++) {
      if (heads[i].getAttribute("data-key") === key) { return i; }
    }
    return -1;
  }

  Array.prototype.forEach.call(heads, function (head, col) {
    var button = head.querySelector("button");
    if (!button) { return; }
    button.addEventListener("click", function () {
      sortBy(col, head.getAttribute("aria-sort") === "ascending");
    });
  });

  var match = /^#sort=([a-z_]+)(:desc)?$/.exec(window.location.hash);
  if (match && column(match[1]) >= 0) { sortBy(column(match[1]), !!match[2]); }
  document.documentElement.setAttribute("data-ready", "1");
})();
