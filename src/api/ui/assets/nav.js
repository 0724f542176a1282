// Moving between pages without reloading: the shell registers how it draws
// a page, and every page calls go().

let draw = () => {};

export function onNavigate(render) {
  draw = render;
}

export function go(path, { replace = false } = {}) {
  if (replace) history.replaceState(null, "", path);
  else history.pushState(null, "", path);
  draw();
}
