// Epistola capture widget. Embed:
//   <script>window.epistola=window.epistola||function(){(epistola.q=epistola.q||[]).push(arguments)}</script>
//   <script async src="https://t.example.com/w.js" data-site="SITE"></script>
// API: epistola('event', 'product_view' | NAME), epistola('show'),
//      epistola('convert', {value, currency, order_id}) on the order confirmation page.
// Nothing about the visitor is sent before they submit the form, except an order the site reports
// with 'convert' for a visitor who came from a letter (and then only the letter's own token); no
// cookies (state stays in this site's localStorage). The form never appears on entry, only when a configured trigger fires.
((w, d) => {
  const script = d.currentScript;
  const site = script && script.dataset.site;
  if (!site || w.__epistola) return;
  w.__epistola = 1;
  const base = new URL(script.src).origin;
  const key = 'epistola:' + site;
  const now = () => Date.now();
  let st;
  try {
    st = JSON.parse(localStorage.getItem(key)) || {};
  } catch (e) {
    st = {};
  }
  const save = () => {
    try {
      localStorage.setItem(key, JSON.stringify(st));
    } catch (e) {}
  };
  st.v = st.v || 0; // product views
  st.s = st.s || 0; // seconds on site
  // text/plain: a "simple" request, no CORS preflight; keepalive survives navigation.
  const post = (path, body) => fetch(base + path, { method: 'POST', body: JSON.stringify(body), headers: { 'content-type': 'text/plain' }, keepalive: true, credentials: 'omit' });
  // A click in a letter lands here with ?ep=<attribution token>: keep it (last click wins) until the
  // expiry signed into it (bytes 7..11), and take it out of the address bar so it is not shared.
  try {
    const u = new URL(location.href);
    const t = u.searchParams.get('ep');
    if (t) {
      const b = atob(t.replace(/-/g, '+').replace(/_/g, '/'));
      st.ep = t;
      st.ee = [7, 8, 9, 10].reduce((n, i) => n * 256 + b.charCodeAt(i), 0);
      save();
      u.searchParams.delete('ep');
      history.replaceState(history.state, '', u);
    }
  } catch (e) {}
  const convert = (o) => st.ep && st.ee * 1e3 > now() &&
    post('/v1/convert', { site, attribution: st.ep, value: o.value, currency: o.currency, order_id: String(o.order_id) }).catch(() => {});
  const T = {
    en: ['E-mail', 'Continue', 'Back', 'Close', 'Thank you! Check your inbox to confirm your address.', 'Please check the form.', 'Too many tries, please try again later.', 'Something went wrong, please try again.', 'Sign up', 'Step %1 of %2', 'Enter your e-mail address, like name@example.com.', 'Tick this box to go on.', 'Choose an answer.'],
    ru: ['E-mail', 'Продолжить', 'Назад', 'Закрыть', 'Спасибо! Проверьте почту и подтвердите адрес.', 'Проверьте форму.', 'Слишком много попыток, попробуйте позже.', 'Что-то пошло не так, попробуйте ещё раз.', 'Подписаться', 'Шаг %1 из %2', 'Введите адрес e-mail, например name@example.com.', 'Отметьте, чтобы продолжить.', 'Выберите ответ.'],
    uk: ['E-mail', 'Продовжити', 'Назад', 'Закрити', 'Дякуємо! Перевірте пошту й підтвердьте адресу.', 'Перевірте форму.', 'Забагато спроб, спробуйте пізніше.', 'Щось пішло не так, спробуйте ще раз.', 'Підписатися', 'Крок %1 з %2', 'Введіть адресу e-mail, наприклад name@example.com.', 'Позначте, щоб продовжити.', 'Оберіть відповідь.'],
  };
  let cfg;
  let open;
  const queued = [];
  const cap = () => st.done || (st.x && now() - st.x < cfg.display_cap_days * 864e5);
  const fire = () => cap() || maybe(1);
  const maybe = (force) => {
    if (!cfg || open || (!force && cap())) return;
    const t = cfg.trigger;
    if (force || (t.product_views && st.v >= t.product_views) || (t.seconds_on_site && st.s >= t.seconds_on_site)) show();
  };
  // Counting happens at once (the visitor may leave before the config arrives); reacting waits for it.
  const react = (cmd, a) => {
    if (!cfg) return queued.push([cmd, a]);
    if (cmd == 'show') return maybe(1);
    if (cmd == 'event' && cfg.trigger.custom_event && a == cfg.trigger.custom_event) return fire();
    maybe();
  };
  const api = (cmd, a) => {
    if (cmd == 'convert') return convert(a || {});
    if (cmd == 'event' && a == 'product_view') {
      st.v++;
      save();
    }
    react(cmd, a);
  };
  const prior = (w.epistola && w.epistola.q) || [];
  w.epistola = (...a) => api(...a);
  prior.forEach((a) => api(...a));

  const el = (tag, attrs, ...kids) => {
    const e = d.createElement(tag);
    for (const k in attrs || {}) k[0] == 'o' ? (e[k] = attrs[k]) : e.setAttribute(k, attrs[k]);
    e.append(...kids);
    return e;
  };

  function show() {
    open = 1;
    const L = T[cfg.locale] || T.en;
    const prev = d.activeElement;
    const host = el('div', { 'data-epistola': '' });
    const root = host.attachShadow({ mode: 'open' });
    root.append(
      el('style', {},
        ':host{all:initial}.b{position:fixed;inset:0;background:#0008;display:flex;align-items:center;justify-content:center;z-index:2147483647;font:16px/1.4 var(--epistola-font,system-ui,sans-serif)}' +
        '.f{background:var(--epistola-bg,#fff);color:var(--epistola-fg,#222);border-radius:var(--epistola-radius,12px);padding:24px;width:min(92vw,400px);max-height:90vh;overflow:auto;box-sizing:border-box;position:relative}' +
        'h2{margin:0 0 8px;font-size:20px}label{display:block;margin:12px 0 4px}input,select{width:100%;box-sizing:border-box;padding:10px;font:inherit;border:1px solid #888;border-radius:6px}' +
        '.c{display:flex;gap:8px;align-items:flex-start}.c input{width:auto;margin-top:4px}button{font:inherit;padding:10px 16px;border:0;border-radius:6px;background:var(--epistola-accent,#222);color:#fff;cursor:pointer;margin:16px 12px 0 0}' +
        '.x{position:absolute;top:8px;right:8px;margin:0;background:none;color:inherit;font-size:22px;padding:4px 10px}.h{position:absolute;left:-9999px}.e{color:#b00020}.fe{color:#b00020;margin:4px 0 0;font-size:14px}.s{margin:0 0 4px;font-size:14px;opacity:.8}.k{background:none;color:inherit;border:1px solid #888}'),
    );
    const msg = el('p', { role: 'status', 'aria-live': 'polite' });
    const title = el('h2', { id: 't' }, cfg.promise.title);
    const dlg = el('div', { class: 'f', role: 'dialog', 'aria-modal': 'true', 'aria-labelledby': 't' });
    const back = el('div', { class: 'b' }, dlg);
    root.append(back);
    const close = (dismissed) => {
      if (dismissed) {
        st.x = now();
        save();
      }
      host.remove();
      open = 0;
      prev && prev.focus && prev.focus();
    };
    const answers = {};
    let step = 0;
    const field = (id, label, kind, options) => {
      const input = options && options.length
        ? el('select', { id, name: id, required: '' }, el('option', { value: '' }, '—'), ...options.map((o) => el('option', { value: o }, o)))
        : el('input', { id, name: id, type: kind == 'date' ? 'date' : kind == 'phone' ? 'tel' : 'text' });
      return [el('label', { for: id }, label), input];
    };
    const render = () => {
      const steps = cfg.quiz.length + 1;
      dlg.replaceChildren(...(steps > 1 ? [el('p', { class: 's' }, L[9].replace('%1', step + 1).replace('%2', steps))] : []), title, el('p', {}, cfg.promise.description));
      const quiz = cfg.quiz[step];
      // An error stands next to its field (named by aria-describedby) and goes when it is fixed.
      const bad = (input, text) => {
        const e = el('p', { class: 'fe', id: 'e' + input.id }, text);
        const clear = () => {
          e.remove();
          input.removeAttribute('aria-invalid');
          input.removeAttribute('aria-describedby');
          if (!dlg.querySelector('.fe')) msg.textContent = '';
        };
        input.setAttribute('aria-invalid', 'true');
        input.setAttribute('aria-describedby', e.id);
        (input.type == 'checkbox' ? input.parentNode : input).after(e);
        input.addEventListener(input.type == 'checkbox' || input.tagName == 'SELECT' ? 'change' : 'input', clear, { once: true });
        return input;
      };
      const form = el('form', { novalidate: '' });
      const x = el('button', { type: 'button', class: 'x', 'aria-label': L[3], onclick: () => close(1) }, '×');
      if (quiz) {
        form.append(...field('q', quiz.question, quiz.kind, quiz.options), el('button', {}, L[1]));
        form.onsubmit = (e) => {
          e.preventDefault();
          const v = form.q.value;
          if (!v) return bad(form.q, L[12]).focus();
          answers[quiz.id] = v;
          step++;
          render();
        };
      } else {
        form.append(
          el('label', { for: 'em' }, L[0]),
          el('input', { id: 'em', name: 'em', type: 'email', autocomplete: 'email', required: '' }),
          ...cfg.fields.flatMap((f) => field('f_' + f.name, f.label, f.kind)),
          ...cfg.consents.map((c, i) =>
            el('div', { class: 'c' }, el('input', { type: 'checkbox', id: 'c' + i, required: '' }), el('label', { for: 'c' + i }, c.text))),
          el('input', { class: 'h', name: 'hp', tabindex: '-1', autocomplete: 'off', 'aria-hidden': 'true' }),
          el('button', {}, L[8]),
          msg,
        );
        form.onsubmit = (e) => {
          e.preventDefault();
          const consents = cfg.consents.filter((c, i) => form['c' + i].checked);
          form.querySelectorAll('.fe').forEach((e) => e.remove());
          form.querySelectorAll('[aria-invalid]').forEach((i) => (i.removeAttribute('aria-invalid'), i.removeAttribute('aria-describedby')));
          const wrong = [
            ...(!form.em.value || !form.em.checkValidity() ? [bad(form.em, L[10])] : []),
            ...cfg.consents.map((c, i) => form['c' + i]).filter((b) => !b.checked).map((b) => bad(b, L[11])),
          ];
          if (wrong.length) {
            msg.className = 'e';
            msg.textContent = L[5];
            return wrong[0].focus();
          }
          const fields = {};
          cfg.fields.forEach((f) => {
            const v = form['f_' + f.name].value;
            if (v) fields[f.name] = v;
          });
          const body = {
            site, email: form.em.value, fields, answers, hp: form.hp.value, form: cfg.quiz.length ? 'quiz' : 'popup',
            consents: consents.map((c) => ({ purpose: c.purpose, channel: c.channel, text_version: c.version })),
          };
          post('/v1/capture', body)
            .then((r) => {
              if (r.status == 202) {
                st.done = 1;
                save();
                dlg.replaceChildren(title, msg, x);
                msg.className = '';
                msg.textContent = L[4];
                x.focus();
              } else {
                msg.className = 'e';
                msg.textContent = L[r.status == 429 ? 6 : r.status == 400 ? 5 : 7];
              }
            }, () => {
              msg.className = 'e';
              msg.textContent = L[7];
            });
        };
      }
      // Back sits beside the step's own button, before any message.
      if (step) form.querySelector('button').after(el('button', { type: 'button', class: 'k', onclick: () => (step--, render()) }, L[2]));
      dlg.append(form, x);
      (form.querySelector('input,select') || x).focus();
    };
    // Keyboard: Escape closes, Tab stays inside the dialog.
    back.onkeydown = (e) => {
      if (e.key == 'Escape') return close(1);
      if (e.key != 'Tab') return;
      const f = [...dlg.querySelectorAll('input:not(.h),select,button')];
      const i = f.indexOf(root.activeElement);
      if (e.shiftKey ? i <= 0 : i == f.length - 1) {
        e.preventDefault();
        f[e.shiftKey ? f.length - 1 : 0].focus();
      }
    };
    d.body.append(host);
    render();
  }

  fetch(base + '/v1/sites/' + encodeURIComponent(site) + '/widget', { credentials: 'omit' })
    .then((r) => (r.ok ? r.json() : Promise.reject(r.status)))
    .then((c) => {
      cfg = c;
      const t = c.trigger;
      if (t.seconds_on_site) setInterval(() => d.visibilityState == 'visible' && (st.s++, save(), maybe()), 1e3);
      if (t.exit_intent) d.addEventListener('mouseout', (e) => !e.relatedTarget && e.clientY <= 0 && fire());
      if (t.scroll_percent) {
        w.addEventListener('scroll', () => {
          const h = d.documentElement;
          if (((h.scrollTop + innerHeight) / h.scrollHeight) * 100 >= t.scroll_percent) fire();
        }, { passive: true });
      }
      queued.splice(0).forEach((a) => react(...a));
      maybe();
    }, () => {});
})(window, document);
