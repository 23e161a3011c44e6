/* expose view: the page of an output folder (infer, eval, train). Plain script, no modules: a
   file:// page may load scripts but not fetch files or import modules. Reads only .view/ beside the
   page (manifest.js now, data/<key>.js when an item is shown) and the images it links. */
(function () {
  "use strict";
  var $ = function (id) { return document.getElementById(id); };
  var state = { manifest: null, cache: {}, order: [], pending: {}, stage: null };
  var api = window.exposeView = { errors: [], meshes: meshCount, painted: paintedPixels, charts: chartsDrawn, mask: drawnMask };
  window.addEventListener("error", function (e) { api.errors.push(String(e.message)); });

  function el(tag, attrs, text) {
    var node = document.createElement(tag);
    Object.keys(attrs || {}).forEach(function (k) { node.setAttribute(k, attrs[k]); });
    if (text !== undefined) node.textContent = text;
    return node;
  }

  function fmt(x, digits) {
    return x === null || x === undefined ? "" : Number(x).toFixed(digits === undefined ? 2 : digits);
  }

  /* -- data files: one <script> per key, kept for the last few keys -------------------------- */
  window.exposeViewData = function (key, payload) {
    state.cache[key] = payload;
    state.order.push(key);
    while (state.order.length > 8) delete state.cache[state.order.shift()];
    (state.pending[key] || []).forEach(function (resolve) { resolve(payload); });
    delete state.pending[key];
  };

  function load(key) {
    if (state.cache[key]) return Promise.resolve(state.cache[key]);
    return new Promise(function (resolve, reject) {
      var first = !state.pending[key];
      (state.pending[key] = state.pending[key] || []).push(resolve);
      if (!first) return;
      var script = el("script", { src: ".view/data/" + key + ".js" });
      script.onload = function () { script.remove(); };
      script.onerror = function () { reject(new Error("cannot read .view/data/" + key + ".js: run expose view again")); };
      document.head.appendChild(script);
    });
  }

  function bytes(b64) {
    var bin = atob(b64), out = new Uint8Array(bin.length);
    for (var i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
    return out.buffer;
  }

  /* -- the 3D stage: meshes (OpenCV camera frame, metres) seen from the estimated camera ------- */
  function Stage() {
    var canvas = $("canvas");
    this.renderer = new THREE.WebGLRenderer({ canvas: canvas, alpha: true, antialias: true, preserveDrawingBuffer: true });
    this.renderer.setClearColor(0x000000, 0);
    this.scene = new THREE.Scene();
    this.camera = new THREE.PerspectiveCamera(30, 1, 0.05, 200);
    this.scene.add(this.camera);
    this.scene.add(new THREE.AmbientLight(0xffffff, 0.45));
    var light = new THREE.DirectionalLight(0xffffff, 0.75);
    light.position.set(0.3, 0.5, 1);
    this.camera.add(light);
    this.meshes = {};
    this.orbit = { yaw: 0, pitch: 0, zoom: 1 };
    this.target = new THREE.Vector3(0, 0, -3);
    this.bindMouse(canvas);
  }

  Stage.prototype.setCamera = function (focal, size) {  // size: [height, width] px
    var box = $("viewport").getBoundingClientRect();
    var width = Math.max(160, Math.min(box.width || 640, 1200)), height = Math.round(width * size[0] / size[1]);
    var maxH = Math.max(200, window.innerHeight - 140);
    if (height > maxH) { width = Math.round(width * maxH / height); height = maxH; }
    $("viewport").style.width = width + "px";
    $("viewport").style.height = height + "px";
    this.renderer.setSize(width, height, false);
    this.renderer.domElement.style.width = width + "px";
    this.renderer.domElement.style.height = height + "px";
    this.camera.fov = 2 * Math.atan(size[0] / 2 / focal) * 180 / Math.PI;
    this.camera.aspect = size[1] / size[0];
    this.camera.updateProjectionMatrix();
  };
  Stage.prototype.mesh = function (id, positions, faces, colour, vertexColours) {
    var mesh = this.meshes[id];
    var flipped = new Float32Array(positions.length);  // OpenCV (x right, y down, z ahead) -> three.js (y up, z back)
    for (var i = 0; i < positions.length; i += 3) {
      flipped[i] = positions[i]; flipped[i + 1] = -positions[i + 1]; flipped[i + 2] = -positions[i + 2];
    }
    if (!mesh) {
      var material = new THREE.MeshLambertMaterial({ color: vertexColours ? 0xffffff : colour,
        vertexColors: !!vertexColours, side: THREE.DoubleSide });
      mesh = this.meshes[id] = new THREE.Mesh(new THREE.BufferGeometry(), material);
      mesh.geometry.setIndex(new THREE.BufferAttribute(faces, 1));
      this.scene.add(mesh);
    }
    mesh.geometry.setAttribute("position", new THREE.BufferAttribute(flipped, 3));
    if (vertexColours) mesh.geometry.setAttribute("color", new THREE.BufferAttribute(vertexColours, 3));
    mesh.geometry.computeVertexNormals();
    mesh.geometry.computeBoundingSphere();
    mesh.visible = true;
    return mesh;
  };

  Stage.prototype.clear = function () {
    var self = this;
    Object.keys(this.meshes).forEach(function (id) {
      self.scene.remove(self.meshes[id]);
      self.meshes[id].geometry.dispose();
      self.meshes[id].material.dispose();
    });
    this.meshes = {};
    this.orbit = { yaw: 0, pitch: 0, zoom: 1 };
  };

  Stage.prototype.centre = function () {  // the orbit's centre: the visible meshes' bounding spheres
    var sum = new THREE.Vector3(), n = 0, self = this;
    Object.keys(this.meshes).forEach(function (id) {
      var m = self.meshes[id];
      if (m.visible && m.geometry.boundingSphere) { sum.add(m.geometry.boundingSphere.center); n++; }
    });
    if (n) this.target.copy(sum.divideScalar(n));
  };

  Stage.prototype.draw = function () {  // at rest: the estimated camera (origin, looking down -z)
    var o = this.orbit, cam = this.camera;
    cam.position.set(0, 0, 0);
    cam.rotation.set(0, 0, 0);
    if (o.yaw || o.pitch || o.zoom !== 1) {
      var offset = cam.position.clone().sub(this.target);
      offset.applyAxisAngle(new THREE.Vector3(0, 1, 0), o.yaw);
      var right = new THREE.Vector3().crossVectors(new THREE.Vector3(0, 1, 0), offset).normalize();
      offset.applyAxisAngle(right, o.pitch).multiplyScalar(o.zoom);
      cam.position.copy(this.target).add(offset);
      cam.lookAt(this.target);
    }
    var atRest = !o.yaw && !o.pitch && o.zoom === 1;
    $("backdrop").style.opacity = $("stage-backdrop").checked ? (atRest ? 1 : 0.2) : 0;
    this.renderer.render(this.scene, cam);
  };

  Stage.prototype.bindMouse = function (target) {
    var self = this, last = null;
    target.addEventListener("pointerdown", function (e) {
      last = [e.clientX, e.clientY];
      if (e.isTrusted) target.setPointerCapture(e.pointerId);
    });
    target.addEventListener("pointerup", function () { last = null; });
    target.addEventListener("pointermove", function (e) {
      if (!last) return;
      self.orbit.yaw -= (e.clientX - last[0]) * 0.01;
      self.orbit.pitch = Math.max(-1.4, Math.min(1.4, self.orbit.pitch - (e.clientY - last[1]) * 0.01));
      last = [e.clientX, e.clientY];
      self.draw();
    });
    target.addEventListener("wheel", function (e) {
      e.preventDefault();
      self.orbit.zoom = Math.max(0.05, Math.min(20, self.orbit.zoom * (e.deltaY > 0 ? 1.1 : 1 / 1.1)));
      self.draw();
    }, { passive: false });
  };

  function stage() {
    if (!state.stage) {
      state.stage = new Stage();
      $("stage-close").onclick = function () { history.pushState("", document.title, location.pathname); closeStage(); };
      $("stage-reset").onclick = function () { state.stage.orbit = { yaw: 0, pitch: 0, zoom: 1 }; state.stage.draw(); };
      $("stage-backdrop").onchange = function () { state.stage.draw(); };
    }
    return state.stage;
  }

  function openStage(title) {
    var s = stage();
    stopPlayback();
    s.clear();
    document.body.dataset.stage = "loading";
    $("stage").hidden = false;
    $("stage-title").textContent = title;
    $("stage-controls").hidden = true;
    $("stage-photo").hidden = false;
    $("stage-backdrop").checked = true;
    $("side").textContent = "";
    $("stage-time").textContent = "";
    return s;
  }

  function closeStage() {
    stopPlayback();
    $("stage").hidden = true;
    delete document.body.dataset.stage;
  }

  function stageReady(s) {
    s.centre();
    s.draw();
    document.body.dataset.stage = "ready";
  }

  function fail(err) {
    api.errors.push(String(err && err.message || err));
    document.body.dataset.stage = "error";
    $("side").appendChild(el("p", { "class": "error" }, String(err && err.message || err)));
  }

  function facesOf(key) {
    return load(key).then(function (d) { return new Uint32Array(bytes(d.faces)); });
  }

  var FIRST = ["camera_translation", "focal_length", "bbox_xyxy", "bbox_score", "betas", "expression", "global_orient_aa"];

  function paramTable(params, names) {  // the camera, box and shape first; the rest folded below
    var table = el("table", { "class": "params" });
    var rest = Object.keys(params).filter(function (n) { return FIRST.indexOf(n) < 0; });
    if (!names) {
      names = FIRST.filter(function (n) { return n in params; });
      if (rest.length) {
        var more = el("details"), wrap = el("div");
        more.appendChild(el("summary", {}, "all " + Object.keys(params).length + " parameters"));
        more.appendChild(paramTable(params, rest));
        wrap.appendChild(table);
        wrap.appendChild(more);
        names.forEach(function (name) { table.appendChild(paramRow(name, params[name])); });
        return wrap;
      }
    }
    names.forEach(function (name) { table.appendChild(paramRow(name, params[name])); });
    return table;
  }

  function paramRow(name, value) {
    var tr = el("tr");
    tr.appendChild(el("th", {}, name));
    tr.appendChild(el("td", {}, Array.isArray(value) ? JSON.stringify(value).replace(/,/g, ", ") : String(value)));
    return tr;
  }

  /* -- infer: an image's persons over the photo ------------------------------------------------ */
  function showImage(index) {
    var item = state.manifest.images[index];
    if (!item) return;
    var s = openStage(item.name + " (" + item.persons + " person" + (item.persons === 1 ? "" : "s") + ")");
    $("backdrop").src = item.photo || item.overlay || "";
    $("backdrop").className = item.photo ? "" : "overlay";
    if (!item.key) {  // nothing to draw: say why (not a page error)
      $("side").appendChild(el("p", { "class": "error" }, item.error || "no mesh saved for this image (run expose infer with --format npz)"));
      document.body.dataset.stage = "ready";
      return;
    }
    s.setCamera(item.focal, item.size);
    load(item.key).then(function (data) {
      return Promise.all(data.persons.map(function (p) { return facesOf(p.faces); })).then(function (faces) {
        data.persons.forEach(function (p, i) {
          s.mesh("p" + i, new Float32Array(bytes(p.v)), faces[i], p.colour);
          var box = el("details", { open: "" });
          var summary = el("summary", {}, "person " + i);
          summary.style.borderLeft = "0.6em solid " + p.colour;
          box.appendChild(summary);
          box.appendChild(paramTable(p.params));
          $("side").appendChild(box);
        });
        stageReady(s);
      });
    }).catch(fail);
  }

  /* -- infer: a video's tracks, frame by frame, beside the overlay frame ----------------------- */
  var playback = { timer: null };

  function stopPlayback() {
    if (playback.timer) clearInterval(playback.timer);
    playback.timer = null;
    $("play").textContent = "Play";
  }

  function showVideo(index, frame) {
    var video = state.manifest.videos[index];
    if (!video) return;
    var s = openStage(video.name + " (" + video.frames.length + " frames, " + Object.keys(video.tracks).length + " tracks)");
    $("backdrop").removeAttribute("src");
    $("stage-photo").hidden = true;
    $("stage-controls").hidden = false;
    var picture = el("img", { id: "frame-overlay", alt: "overlay" });
    $("side").appendChild(picture);
    var legend = el("p", { "class": "legend" });
    Object.keys(video.tracks).forEach(function (id) {
      var tag = el("span", {}, "track " + id);
      tag.style.borderLeft = "0.8em solid " + video.tracks[id];
      legend.appendChild(tag);
    });
    $("side").appendChild(legend);
    if (video.focal) s.setCamera(video.focal, video.size);
    var scrub = $("scrub");
    scrub.max = Math.max(0, video.frames.length - 1);
    scrub.oninput = function () { seek(video, s, Number(scrub.value)); };
    $("play").onclick = function () {
      if (playback.timer) { stopPlayback(); return; }
      $("play").textContent = "Pause";
      playback.timer = setInterval(function () {
        var next = (Number(scrub.value) + 1) % video.frames.length;
        scrub.value = next;
        seek(video, s, next);
      }, 1000 / Math.max(1, video.fps));
    };
    scrub.value = Math.min(frame || 0, scrub.max);
    seek(video, s, Number(scrub.value)).then(function () { stageReady(s); }).catch(fail);
  }

  function seek(video, s, i) {
    var entry = video.frames[i], chunk = Math.floor(i / video.chunk);
    $("frame-overlay").src = entry.overlay || "";
    $("stage-time").textContent = "frame " + entry.frame + " (" + fmt(entry.frame / video.fps) + " s)";
    var key = video.key + "_" + String(chunk).padStart(5, "0");
    if (chunk + 1 < Math.ceil(video.frames.length / video.chunk)) {  // read ahead: the next chunk
      load(video.key + "_" + String(chunk + 1).padStart(5, "0")).catch(function () {});
    }
    return load(key).then(function (data) {
      var here = data.frames[i - chunk * video.chunk];
      return Promise.all(here.persons.map(function (p) { return facesOf(p.faces); })).then(function (faces) {
        Object.keys(s.meshes).forEach(function (id) { s.meshes[id].visible = false; });
        here.persons.forEach(function (p, k) { s.mesh("t" + p.track, new Float32Array(bytes(p.v)), faces[k], p.colour); });
        if (!s.orbit.yaw && !s.orbit.pitch) s.centre();
        s.draw();
      });
    });
  }

  /* -- pages ------------------------------------------------------------------------------------ */
  function gallery(items, make) {  // cards added a page at a time as the reader scrolls
    var grid = el("div", { "class": "grid" }), shown = 0, sentinel = el("div", { "class": "sentinel" });
    function more() {
      var end = Math.min(items.length, shown + 60);
      for (; shown < end; shown++) grid.appendChild(make(items[shown], shown));
      if (shown >= items.length) sentinel.remove();
    }
    more();
    var frag = el("div");
    frag.appendChild(grid);
    if (shown < items.length) {
      frag.appendChild(sentinel);
      new IntersectionObserver(function (entries) { if (entries[0].isIntersecting) more(); }).observe(sentinel);
    }
    return frag;
  }

  function card(src, caption, href) {
    var a = el("a", { "class": "card", href: href });
    if (src) a.appendChild(el("img", { src: src, loading: "lazy", alt: caption }));
    else a.appendChild(el("div", { "class": "noimage" }, "no overlay (run infer with --render)"));
    a.appendChild(el("span", {}, caption));
    return a;
  }

  function inferPage(m, main) {
    $("subtitle").textContent = m.images.length + " image(s), " + m.videos.length + " video(s)" +
      (m.complete ? "" : " (the run did not complete)") + ". Click one to see its meshes in 3D: drag to orbit, wheel to zoom.";
    if (m.videos.length) {
      main.appendChild(el("h2", {}, "Videos"));
      main.appendChild(gallery(m.videos, function (v, i) {
        return card(v.frames.length ? v.frames[0].overlay : null, v.name + ": " + v.frames.length + " frames", "#video=" + i);
      }));
    }
    if (m.images.length) {
      main.appendChild(el("h2", {}, "Images"));
      main.appendChild(gallery(m.images, function (item, i) {
        var text = item.name + ": " + item.persons + " person(s)" + (item.error ? " - " + item.error : "");
        return card(item.overlay || item.photo, text, "#image=" + i);
      }));
    }
  }

  /* -- charts: lines over steps, histograms ------------------------------------------------------ */
  var PALETTE = ["#4e79a7", "#e15759", "#59a14f", "#f28e2b", "#76b7b2", "#edc948", "#b07aa1", "#9c755f", "#ff9da7", "#bab0ac"];

  function axes(ctx, w, h, pad, x0, x1, y0, y1) {
    ctx.strokeStyle = "#999"; ctx.fillStyle = "#444"; ctx.font = "11px sans-serif";
    ctx.strokeRect(pad, 8, w - pad - 8, h - pad - 8);
    ctx.fillText(String(+y1.toPrecision(3)), 4, 16);
    ctx.fillText(String(+y0.toPrecision(3)), 4, h - pad);
    ctx.fillText(String(+x0.toPrecision(4)), pad, h - pad + 14);
    var right = String(+x1.toPrecision(4));
    ctx.fillText(right, w - 8 - ctx.measureText(right).width, h - pad + 14);
  }

  function lineChart(title, series) {
    var box = el("figure", { "class": "chart" }), c = el("canvas", { width: 480, height: 220 });
    box.appendChild(el("figcaption", {}, title));
    box.appendChild(c);
    var names = Object.keys(series), all = [];
    names.forEach(function (n) { all = all.concat(series[n]); });
    var xs = all.map(function (p) { return p[0]; }), ys = all.map(function (p) { return p[1]; });
    var x0 = Math.min.apply(null, xs), x1 = Math.max.apply(null, xs), y0 = Math.min.apply(null, ys), y1 = Math.max.apply(null, ys);
    if (x1 === x0) x1 = x0 + 1;
    if (y1 === y0) { y1 = y0 + Math.abs(y0 || 1) * 0.1; y0 = y0 - Math.abs(y0 || 1) * 0.1; }
    var ctx = c.getContext("2d"), pad = 44, w = c.width, h = c.height;
    axes(ctx, w, h, pad, x0, x1, y0, y1);
    var legend = el("div", { "class": "legend" });
    names.forEach(function (n, k) {
      var colour = PALETTE[k % PALETTE.length];
      ctx.strokeStyle = colour; ctx.lineWidth = 1.5; ctx.beginPath();
      series[n].forEach(function (p, i) {
        var x = pad + (p[0] - x0) / (x1 - x0) * (w - pad - 8), y = 8 + (1 - (p[1] - y0) / (y1 - y0)) * (h - pad - 8);
        if (i) ctx.lineTo(x, y); else ctx.moveTo(x, y);
      });
      if (series[n].length === 1) ctx.arc(pad + (series[n][0][0] - x0) / (x1 - x0) * (w - pad - 8), 8 + (1 - (series[n][0][1] - y0) / (y1 - y0)) * (h - pad - 8), 3, 0, 7);
      ctx.stroke();
      var tag = el("span", {}, n + " (last " + Number(series[n][series[n].length - 1][1]).toPrecision(4) + ")");
      tag.style.borderLeft = "0.8em solid " + colour;
      legend.appendChild(tag);
    });
    box.appendChild(legend);
    return box;
  }

  function histogram(title, edges, counts) {
    var box = el("figure", { "class": "chart small" }), c = el("canvas", { width: 250, height: 130 });
    box.appendChild(el("figcaption", {}, title));
    box.appendChild(c);
    var ctx = c.getContext("2d"), pad = 40, w = c.width, h = c.height, top = Math.max.apply(null, counts.concat([1]));
    axes(ctx, w, h, pad, edges[0], edges[edges.length - 1], 0, top);
    ctx.fillStyle = PALETTE[0];
    var bw = (w - pad - 8) / counts.length;
    counts.forEach(function (n, i) {
      var bh = n / top * (h - pad - 8);
      ctx.fillRect(pad + i * bw + 1, h - pad - bh, Math.max(1, bw - 2), bh);
    });
    return box;
  }

  function trainPage(m, main) {
    $("subtitle").textContent = m.records + " log record(s) up to step " + m.steps + " (log.jsonl)";
    var charts = el("div", { "class": "charts" });
    m.charts.forEach(function (chart) { charts.appendChild(lineChart(chart.title, chart.series)); });
    main.appendChild(charts);
  }

  /* -- eval: metric table, histograms, worst samples, the error-coloured mesh ------------------ */
  function evalPage(m, main) {
    $("subtitle").textContent = m.benchmark + ": " + m.num_samples + " sample(s). Protocol: " + (m.protocol || "");
    var top = el("div", { "class": "columns" }), left = el("div"), right = el("div", { "class": "grow" });
    var table = el("table", { "class": "metrics" }), head = el("tr");
    ["metric", "unit", "ours", "published", "difference"].forEach(function (h) { head.appendChild(el("th", {}, h)); });
    table.appendChild(head);
    m.metrics.forEach(function (r) {
      var tr = el("tr"), digits = r.unit === "fraction" ? 4 : 2;
      [r.metric, r.unit, fmt(r.ours, digits), fmt(r.published, digits),
        r.difference === null ? "" : (r.difference >= 0 ? "+" : "") + fmt(r.difference, digits)].forEach(function (v) { tr.appendChild(el("td", {}, v)); });
      table.appendChild(tr);
    });
    left.appendChild(table);
    if (m.error_mesh) {
      left.appendChild(el("a", { href: "#errors", "class": "button" }, "Mesh coloured by per-vertex error (" + m.error_mesh.title + ")"));
    }
    right.appendChild(el("h2", {}, "Worst samples by " + (m.worst_metric || "")));
    right.appendChild(gallery(m.worst, function (w) {
      return card(w.overlay, "#" + w.index + " " + w.name + ": " + fmt(w.value) + " " + (w.unit || ""), w.overlay || "#");
    }));
    top.appendChild(left);
    top.appendChild(right);
    main.appendChild(top);
    var charts = el("div", { "class": "charts" });
    m.histograms.forEach(function (hst) { charts.appendChild(histogram(hst.metric + " (" + hst.unit + ")", hst.edges, hst.counts)); });
    main.appendChild(el("h2", {}, "Per-sample errors"));
    main.appendChild(charts);
  }

  function showErrors() {
    var info = state.manifest.error_mesh;
    if (!info) return;
    var s = openStage("per-vertex error: " + info.title);
    $("backdrop").removeAttribute("src");
    $("stage-photo").hidden = true;
    s.setCamera(info.focal, info.size);
    load(info.key).then(function (d) {
      return facesOf(d.faces).then(function (faces) {
        var err = new Float32Array(bytes(d.errors)), colours = new Float32Array(err.length * 3);
        for (var i = 0; i < err.length; i++) {  // blue (0) -> red (the scale's top)
          var t = Math.max(0, Math.min(1, err[i] / info.scale));
          colours[3 * i] = t; colours[3 * i + 1] = 0.2 + 0.6 * (1 - Math.abs(2 * t - 1)) * 0.5; colours[3 * i + 2] = 1 - t;
        }
        s.mesh("errors", new Float32Array(bytes(d.v)), faces, 0xffffff, colours);
        $("side").appendChild(el("p", {}, "blue: 0, red: " + fmt(info.scale) + " " + info.unit + " or more; " + info.note));
        stageReady(s);
      });
    }).catch(fail);
  }

  /* -- test hooks: what the 3D canvas and the charts drew -------------------------------------- */
  function meshCount() {
    if (!state.stage) return 0;
    var n = 0;
    state.stage.scene.traverse(function (o) { if (o.isMesh && o.visible) n++; });
    return n;
  }

  function paintedPixels() {  // pixels of the WebGL canvas that something was drawn on (alpha > 0)
    if (!state.stage) return 0;
    var gl = state.stage.renderer.getContext(), w = gl.drawingBufferWidth, h = gl.drawingBufferHeight;
    var px = new Uint8Array(w * h * 4), n = 0;
    gl.readPixels(0, 0, w, h, gl.RGBA, gl.UNSIGNED_BYTE, px);
    for (var i = 3; i < px.length; i += 4) if (px[i] > 0) n++;
    return n;
  }

  function drawnMask(cols, rows) {  // "0"/"1" per cell of a cols x rows grid over the canvas, top row first
    var gl = state.stage.renderer.getContext(), w = gl.drawingBufferWidth, h = gl.drawingBufferHeight;
    var px = new Uint8Array(w * h * 4), out = "";
    gl.readPixels(0, 0, w, h, gl.RGBA, gl.UNSIGNED_BYTE, px);
    for (var r = 0; r < rows; r++) {
      for (var c = 0; c < cols; c++) {
        var x = Math.floor((c + 0.5) * w / cols), y = h - 1 - Math.floor((r + 0.5) * h / rows);  // GL rows start at the bottom
        out += px[(y * w + x) * 4 + 3] > 0 ? "1" : "0";
      }
    }
    return out;
  }

  function chartsDrawn() {  // chart canvases with a coloured (not grey: axes and labels are) pixel drawn
    return Array.prototype.filter.call(document.querySelectorAll("figure.chart canvas"), function (c) {
      var d = c.getContext("2d").getImageData(0, 0, c.width, c.height).data;
      for (var i = 0; i < d.length; i += 4) {
        if (d[i + 3] > 128 && Math.max(d[i], d[i + 1], d[i + 2]) - Math.min(d[i], d[i + 1], d[i + 2]) > 40) return true;
      }
      return false;
    }).length;
  }

  function route() {
    var hash = location.hash.replace(/^#/, ""), args = {};
    hash.split("&").forEach(function (kv) { var p = kv.split("="); if (p[0]) args[p[0]] = p[1] === undefined ? "" : p[1]; });
    if (args.image !== undefined) showImage(Number(args.image));
    else if (args.video !== undefined) showVideo(Number(args.video), Number(args.frame || 0));
    else if (args.errors !== undefined) showErrors();
    else closeStage();
  }

  window.exposeViewManifest = function (m) {
    state.manifest = m;
    var main = $("main");
    main.textContent = "";
    ({ infer: inferPage, train: trainPage, eval: evalPage })[m.kind](m, main);
    window.addEventListener("hashchange", route);
    document.addEventListener("keydown", function (e) { if (e.key === "Escape" && !$("stage").hidden) $("stage-close").click(); });
    document.body.dataset.state = "ready";
    route();
  };
})();
