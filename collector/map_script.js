// stops.html: markers from the embedded site data, popups, legend, table sorting.
// Every text from the field is set with textContent, never parsed as HTML.
(function () {
  "use strict";
  var data = JSON.parse(document.getElementById("sites-data").textContent);
  var table = document.getElementById("sites");
  var markers = {};
  var map = null;

  function note(text) {
    var box = document.getElementById("map-note");
    box.textContent = text;
    box.className = "shown";
  }

  function el(tag, text, className) {
    var node = document.createElement(tag);
    if (text !== undefined && text !== null) node.textContent = text;
    if (className) node.className = className;
    return node;
  }

  function popup(site) {
    var box = el("div", null, "popup");
    box.appendChild(el("h3", site.title));
    var list = el("dl");
    site.popup.forEach(function (line) {
      list.appendChild(el("dt", line[0]));
      list.appendChild(el("dd", line[1]));
    });
    box.appendChild(list);
    return box;
  }

  function legend() {
    var control = L.control({ position: "bottomright" });
    control.onAdd = function () {
      var box = el("div", null, "legend");
      data.legend.forEach(function (item) {
        var row = el("div");
        row.title = item.meaning;
        var dot = el("span", null, "dot");
        dot.style.background = item.color;
        row.appendChild(dot);
        row.appendChild(document.createTextNode(item.grade + " (" + item.count + ")"));
        box.appendChild(row);
      });
      box.appendChild(el("div", "dashed ring: candidate site; small: not in the plan"));
      return box;
    };
    control.addTo(map);
  }

  // OpenStreetMap tiles when the network has them; offline, a plain background and the markers.
  function tiles() {
    if (navigator.onLine === false) {
      note("Offline: no background map, the markers and the table are complete.");
      return;
    }
    var layer = L.tileLayer("https://tile.openstreetmap.org/{z}/{x}/{y}.png", {
      maxZoom: 19,
      attribution: '&copy; <a href="https://www.openstreetmap.org/copyright">OpenStreetMap</a> contributors'
    });
    var loaded = 0;
    var failed = 0;
    layer.on("tileload", function () { loaded += 1; });
    layer.on("tileerror", function () {
      failed += 1;
      if (loaded === 0 && failed === 4) {
        map.removeLayer(layer);
        note("Background map unavailable (offline?): the markers and the table are complete.");
      }
    });
    layer.addTo(map);
  }

  function drawMap() {
    map = L.map("map");
    tiles();
    var bounds = [];
    data.sites.forEach(function (site) {
      if (site.lat === null || site.lon === null) return;
      var marker = L.circleMarker([site.lat, site.lon], {
        radius: site.kind === "discovered" ? 6 : 9,
        color: "#222",
        weight: site.kind === "candidate" ? 2.5 : 1,
        dashArray: site.kind === "candidate" ? "4 3" : null,
        fillColor: site.color,
        fillOpacity: 0.9,
        className: "site-marker grade-" + site.grade
      });
      marker.bindPopup(popup(site), { maxWidth: 460 });
      marker.bindTooltip(el("span", site.title));
      marker.addTo(map);
      markers[site.id] = marker;
      bounds.push([site.lat, site.lon]);
    });
    if (bounds.length) {
      map.fitBounds(bounds, { padding: [30, 30], maxZoom: 14 });
    } else {
      map.setView([46.6, 2.4], 6);
      note("No site has a known position yet: see the table.");
    }
    legend();
  }

  function sortKey(cell) {
    var raw = cell.getAttribute("data-sort");
    if (raw === null || raw === "") return null;
    var number = Number(raw);
    return isNaN(number) ? raw.toLowerCase() : number;
  }

  function sortBy(index, header) {
    var ascending = header.getAttribute("aria-sort") !== "ascending";
    Array.prototype.forEach.call(table.tHead.rows[0].cells, function (th) { th.removeAttribute("aria-sort"); });
    header.setAttribute("aria-sort", ascending ? "ascending" : "descending");
    var body = table.tBodies[0];
    var rows = Array.prototype.slice.call(body.rows);
    rows.sort(function (a, b) {
      var x = sortKey(a.cells[index]);
      var y = sortKey(b.cells[index]);
      if (x === y) return 0;
      if (x === null) return 1;  // empty cells last either way
      if (y === null) return -1;
      var order = x < y ? -1 : 1;
      return ascending ? order : -order;
    });
    rows.forEach(function (row) { body.appendChild(row); });
  }

  Array.prototype.forEach.call(table.tHead.rows[0].cells, function (header, index) {
    var button = header.querySelector("button");
    if (button) button.addEventListener("click", function () { sortBy(index, header); });
  });

  Array.prototype.forEach.call(table.tBodies[0].rows, function (row) {
    row.addEventListener("click", function () {
      var marker = markers[row.getAttribute("data-site")];
      if (!marker || !map) return;
      map.setView(marker.getLatLng(), Math.max(map.getZoom(), 13), { animate: false });
      marker.openPopup();
      document.getElementById("map").scrollIntoView({ behavior: "smooth" });
    });
  });

  if (typeof L === "undefined") {
    note("The map library (Leaflet) could not be loaded: the table below is complete.");
  } else {
    drawMap();
  }
})();
