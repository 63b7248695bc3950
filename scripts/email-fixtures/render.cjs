// Renders the rewrite test corpus (tests/fixtures/email/*.html) with real
// email frameworks: MJML (mjml) and Foundation for Emails (inky + the
// foundation-emails CSS). Run through scripts/gen-email-fixtures, which
// installs the pinned versions of package.json first.
//   node render.cjs <output dir>
'use strict';
const fs = require('fs');
const path = require('path');
const mjml2html = require('mjml');
const { Inky } = require('inky');

const out = process.argv[2];
if (!out) throw new Error('usage: node render.cjs <output dir>');

const utm = (c) => `utm_source=newsletter&utm_medium=email&utm_campaign=${c}`;
const head = (title, preview) => `<mj-head><mj-title>${title}</mj-title><mj-preview>${preview}</mj-preview>
  <mj-attributes><mj-all font-family="Helvetica, Arial, sans-serif" /><mj-text font-size="15px" line-height="22px" color="#333333" /></mj-attributes>
  <mj-style inline="inline">.footer a { color: #888888; }</mj-style></mj-head>`;
const footer = (brand, domain) => `<mj-section padding="20px 0">
  <mj-column><mj-social font-size="12px" icon-size="24px" mode="horizontal">
    <mj-social-element name="facebook" href="https://www.facebook.com/${brand}">Facebook</mj-social-element>
    <mj-social-element name="twitter" href="https://twitter.com/${brand}?lang=en&ref_src=email">Twitter</mj-social-element>
    <mj-social-element name="instagram" href="https://www.instagram.com/${brand}/">Instagram</mj-social-element>
  </mj-social>
  <mj-text css-class="footer" align="center" font-size="11px" color="#888888">${brand} GmbH &middot; Hauptstra&szlig;e 1 &middot; 50667 K&ouml;ln<br/>
    <a href="mailto:support@${domain}">support@${domain}</a> &middot; <a href="tel:+49221555010">+49 221 555 010</a><br/>
    <a href="https://${domain}/preferences?u=8c1f&amp;list=weekly">Email preferences</a> &middot;
    <a href="https://${domain}/unsubscribe?u=8c1f&amp;list=weekly">Unsubscribe</a> &middot;
    <a href="https://${domain}/privacy">Privacy</a></mj-text></mj-column></mj-section>`;

const mjmlLetters = {
  'mjml-newsletter': `<mjml>${head('Weekly digest', 'Five stories worth your time')}<mj-body background-color="#f4f4f4">
  <mj-section background-color="#ffffff"><mj-column><mj-image width="140px" src="https://cdn.dailybrief.example/logo.png" href="https://dailybrief.example/?${utm('digest')}" alt="Daily Brief" /></mj-column></mj-section>
  <mj-section background-color="#ffffff"><mj-column><mj-navbar base-url="https://dailybrief.example" hamburger="hamburger">
    <mj-navbar-link href="/world?${utm('digest')}">World</mj-navbar-link><mj-navbar-link href="/tech?${utm('digest')}">Tech</mj-navbar-link><mj-navbar-link href="/culture?${utm('digest')}">Culture</mj-navbar-link>
  </mj-navbar></mj-column></mj-section>
  ${[1, 2, 3, 4, 5].map((i) => `<mj-section background-color="#ffffff"><mj-column width="35%"><mj-image src="https://cdn.dailybrief.example/story-${i}.jpg" href="https://dailybrief.example/story/${i}?${utm('digest')}" alt="Story ${i}" /></mj-column>
    <mj-column width="65%"><mj-text><h3>Story number ${i}</h3>A short teaser for story ${i}, with &ldquo;quotes&rdquo; and an <a href="https://dailybrief.example/story/${i}?${utm('digest')}#comments">inline link</a>.</mj-text>
    <mj-button align="left" background-color="#1a73e8" href="https://dailybrief.example/story/${i}?${utm('digest')}&amp;pos=button">Read more</mj-button></mj-column></mj-section>`).join('\n')}
  ${footer('dailybrief', 'dailybrief.example')}</mj-body></mjml>`,

  'mjml-receipt': `<mjml>${head('Your receipt', 'Order #10293 is confirmed')}<mj-body>
  <mj-section><mj-column><mj-text font-size="22px">Thanks for your order!</mj-text>
  <mj-table><tr style="border-bottom:1px solid #ecedee;text-align:left;"><th>Item</th><th>Qty</th><th>Price</th></tr>
  <tr><td><a href="https://shop.example/p/espresso-cups">Espresso cups</a></td><td>2</td><td>&euro;24.00</td></tr>
  <tr><td><a href="https://shop.example/p/grinder?variant=black&amp;size=m">Burr grinder</a></td><td>1</td><td>&euro;89.00</td></tr></mj-table>
  <mj-button href="https://shop.example/orders/10293?token=a1b2c3&amp;view=full">View your order</mj-button>
  <mj-text>Questions? Reply to this email or <a href="https://help.shop.example/contact">contact us</a>.</mj-text></mj-column></mj-section>
  ${footer('shop', 'shop.example')}</mj-body></mjml>`,

  'mjml-welcome': `<mjml>${head('Welcome aboard', 'Three steps to get started')}<mj-body background-color="#eef2f7">
  <mj-hero mode="fixed-height" height="300px" background-width="600px" background-height="300px" background-url="https://cdn.app.example/hero.jpg" background-color="#2a3448" padding="100px 0px">
    <mj-text align="center" color="#ffffff" font-size="32px">Welcome, friend</mj-text>
    <mj-button href="https://app.example/onboarding/start?step=1&amp;src=welcome" background-color="#f45e43">Get started</mj-button></mj-hero>
  <mj-section background-color="#ffffff"><mj-column><mj-text>1. <a href="https://app.example/profile">Complete your profile</a></mj-text></mj-column>
    <mj-column><mj-text>2. <a href="https://app.example/import?from=csv">Import contacts</a></mj-text></mj-column>
    <mj-column><mj-text>3. <a href="https://docs.app.example/guides/first-campaign">Send a campaign</a></mj-text></mj-column></mj-section>
  ${footer('app', 'app.example')}</mj-body></mjml>`,

  'mjml-password-reset': `<mjml>${head('Reset your password', 'This link expires in one hour')}<mj-body>
  <mj-section><mj-column><mj-text>Someone asked to reset the password of your account. If it was you, use the button below.</mj-text>
  <mj-button href="https://accounts.example/reset?token=Zm9vYmFy-YmF6&amp;expires=1700000000&amp;sig=3f2a">Reset password</mj-button>
  <mj-text>Or paste this address into your browser: <a href="https://accounts.example/reset?token=Zm9vYmFy-YmF6&amp;expires=1700000000&amp;sig=3f2a">https://accounts.example/reset?token=Zm9vYmFy-YmF6&amp;expires=1700000000&amp;sig=3f2a</a></mj-text>
  <mj-text>If it was not you, <a href="https://accounts.example/security?report=1">tell us</a>.</mj-text></mj-column></mj-section></mj-body></mjml>`,

  'mjml-promo': `<mjml>${head('Winter sale', 'Up to 50% off')}<mj-body background-color="#111111">
  <mj-section background-url="https://cdn.store.example/snow.jpg" background-size="cover" background-repeat="no-repeat"><mj-column>
    <mj-text align="center" color="#ffffff" font-size="40px">Winter sale</mj-text>
    <mj-button href="https://store.example/sale?${utm('winter')}" background-color="#ffffff" color="#111111">Shop now</mj-button></mj-column></mj-section>
  <mj-section background-color="#ffffff">${['coats', 'boots', 'hats'].map((p) => `<mj-column><mj-image src="https://cdn.store.example/${p}.jpg" href="https://store.example/c/${p}?${utm('winter')}" /><mj-text align="center"><a href="https://store.example/c/${p}?${utm('winter')}&amp;ref=text">${p}</a></mj-text></mj-column>`).join('')}</mj-section>
  <mj-section background-color="#ffffff"><mj-column><mj-carousel>
    <mj-carousel-image src="https://cdn.store.example/c1.jpg" href="https://store.example/look/1" />
    <mj-carousel-image src="https://cdn.store.example/c2.jpg" href="https://store.example/look/2" />
  </mj-carousel></mj-column></mj-section>
  ${footer('store', 'store.example')}</mj-body></mjml>`,

  'mjml-event-invite': `<mjml>${head('You are invited', 'RustConf meetup, 12 March')}<mj-body>
  <mj-section><mj-column><mj-text font-size="24px">Meetup: systems programming night</mj-text>
  <mj-text>12 March, 19:00 &ndash; <a href="https://maps.example/?q=Mediapark+7%2C+K%C3%B6ln">Mediapark 7, K&ouml;ln</a></mj-text>
  <mj-button href="https://events.example/e/4711/rsvp?answer=yes&amp;u=8c1f">I'll be there</mj-button>
  <mj-button background-color="#888888" href="https://events.example/e/4711/rsvp?answer=no&amp;u=8c1f">Can't make it</mj-button>
  <mj-text><a href="https://events.example/e/4711/calendar.ics">Add to calendar</a> &middot; <a href="https://events.example/e/4711#agenda">Agenda</a></mj-text>
  </mj-column></mj-section>${footer('events', 'events.example')}</mj-body></mjml>`,

  'mjml-abandoned-cart': `<mjml>${head('Still thinking?', 'Your cart misses you')}<mj-body>
  <mj-section><mj-column><mj-text>You left these in your cart:</mj-text></mj-column></mj-section>
  ${[['Trail runner', 'trail-runner', 129], ['Wool socks', 'wool-socks', 15]].map(([n, s, p]) => `<mj-section><mj-column width="30%"><mj-image src="https://cdn.kicks.example/${s}.png" href="https://kicks.example/p/${s}?cart=restore" /></mj-column><mj-column width="70%"><mj-text><a href="https://kicks.example/p/${s}?cart=restore">${n}</a> &mdash; &euro;${p}</mj-text></mj-column></mj-section>`).join('\n')}
  <mj-section><mj-column><mj-button href="https://kicks.example/cart?restore=abc123&amp;${utm('cart')}">Back to my cart</mj-button></mj-column></mj-section>
  ${footer('kicks', 'kicks.example')}</mj-body></mjml>`,

  'mjml-survey': `<mjml>${head('How did we do?', 'One question, ten seconds')}<mj-body>
  <mj-section><mj-column><mj-text align="center">How likely are you to recommend us?</mj-text></mj-column></mj-section>
  <mj-section><mj-group>${[0, 2, 4, 6, 8, 10].map((n) => `<mj-column><mj-button padding="2px" href="https://survey.example/nps?score=${n}&amp;r=77ab">${n}</mj-button></mj-column>`).join('')}</mj-group></mj-section>
  <mj-section><mj-column><mj-accordion><mj-accordion-element><mj-accordion-title>Why do we ask?</mj-accordion-title>
  <mj-accordion-text>Read <a href="https://survey.example/why">why we ask</a>.</mj-accordion-text></mj-accordion-element></mj-accordion></mj-column></mj-section>
  ${footer('survey', 'survey.example')}</mj-body></mjml>`,

  'mjml-product-launch': `<mjml>${head('Introducing Atlas', 'Our biggest release yet')}<mj-body background-color="#fafafa">
  <mj-wrapper background-color="#ffffff" padding="20px"><mj-section><mj-column><mj-text font-size="28px">Atlas is here</mj-text>
  <mj-image src="https://cdn.atlas.example/launch.gif" href="https://atlas.example/launch?${utm('launch')}" alt="Atlas" />
  <mj-text>Maps, routes and offline mode. <a href="https://atlas.example/changelog#v2">See what changed</a>, watch the <a href="https://video.example/watch?v=dQw4w9WgXcQ&amp;t=42s">launch video</a> or read <a href="https://blog.atlas.example/2026/01/atlas-2">the blog post</a>.</mj-text>
  <mj-button href="https://atlas.example/download?platform=auto&amp;${utm('launch')}">Download</mj-button>
  <mj-divider /><mj-text font-size="12px">Enterprise? <a href="https://atlas.example/contact-sales?size=500%2B">Talk to sales</a>.</mj-text>
  </mj-column></mj-section></mj-wrapper>${footer('atlas', 'atlas.example')}</mj-body></mjml>`,
};

const foundationCss = fs.readFileSync(require.resolve('foundation-emails/dist/foundation-emails.min.css'), 'utf8');
const inkyPage = (title, body) => `<!DOCTYPE html PUBLIC "-//W3C//DTD XHTML 1.0 Strict//EN" "http://www.w3.org/TR/xhtml1/DTD/xhtml1-strict.dtd">
<html xmlns="http://www.w3.org/1999/xhtml"><head><meta http-equiv="Content-Type" content="text/html; charset=utf-8"><meta name="viewport" content="width=device-width"><title>${title}</title>
<style>${foundationCss}</style></head>
<body><table class="body" data-made-with-foundation=""><tr><td class="float-center" align="center" valign="top"><center>${body}</center></td></tr></table></body></html>
`;
const inkyFooter = (domain) => `<row><columns small="12"><p class="text-center"><small><a href="https://${domain}/preferences">Preferences</a> | <a href="https://${domain}/unsubscribe?id=77">Unsubscribe</a> | <a href="mailto:hello@${domain}">hello@${domain}</a></small></p></columns></row>`;

const inkyLetters = {
  'inky-basic': inkyPage('Foundation basic', `<container><row><columns small="12"><h1>Hi, Ada</h1><p class="lead">Your monthly summary is ready.</p>
    <callout class="primary"><p>You saved 12 hours this month. <a href="https://tools.example/report/2026-11?u=ada&amp;ref=callout">See the report</a></p></callout>
    <button class="expand" href="https://tools.example/dashboard?utm_source=foundation&amp;utm_medium=email">Open dashboard</button></columns></row>
    ${inkyFooter('tools.example')}</container>`),
  'inky-hero': inkyPage('Foundation hero', `<container><row><columns small="12"><center><img src="https://cdn.travel.example/hero.jpg" alt="hero"></center></columns></row>
    <row><columns small="12" large="6"><h4>Lisbon</h4><p>Flights from &euro;49. <a href="https://travel.example/deals/lisbon?from=CGN">Book Lisbon</a></p></columns>
    <columns small="12" large="6"><h4>Oslo</h4><p>Flights from &euro;79. <a href="https://travel.example/deals/oslo?from=CGN">Book Oslo</a></p></columns></row>
    <row><columns small="12"><button class="large radius" href="https://travel.example/deals?month=12&amp;sort=price">All deals</button>
    <menu><item href="https://travel.example/flights">Flights</item><item href="https://travel.example/hotels">Hotels</item><item href="https://travel.example/cars">Cars</item></menu></columns></row>
    ${inkyFooter('travel.example')}</container>`),
  'inky-order-shipped': inkyPage('Order shipped', `<container><spacer size="16"></spacer><row><columns small="12"><h3>Your order is on its way</h3>
    <p>Track it with the carrier: <a href="https://track.carrier.example/?id=00340434161234567890&amp;lang=de">00340434161234567890</a></p>
    <table class="callout"><tr><th class="callout-inner secondary"><p>Delivery expected Thursday.</p></th></tr></table>
    <button href="https://shop.example/orders/555/track">Track package</button>
    <p>Need to return something? <a href="https://shop.example/returns/new?order=555">Start a return</a>.</p></columns></row>
    ${inkyFooter('shop.example')}</container>`),
  'inky-newsletter': inkyPage('Foundation newsletter', `<container><row><columns small="12"><h2>Community news</h2></columns></row>
    ${[1, 2, 3].map((i) => `<row><columns small="12" large="4"><a href="https://community.example/posts/${i}"><img src="https://cdn.community.example/${i}.jpg" alt="post ${i}"></a></columns>
    <columns small="12" large="8"><h5><a href="https://community.example/posts/${i}?ref=title">Post ${i}</a></h5><p>Discussion about topic ${i}. <a href="https://community.example/posts/${i}#reply">Reply</a></p></columns></row>`).join('\n')}
    <row><columns small="12"><button class="small secondary" href="https://community.example/?tab=latest&amp;page=1">More posts</button></columns></row>
    ${inkyFooter('community.example')}</container>`),
};

async function main() {
  fs.mkdirSync(out, { recursive: true });
  for (const [name, src] of Object.entries(mjmlLetters)) {
    const r = await mjml2html(src, { validationLevel: 'strict', keepComments: true });
    if (r.errors && r.errors.length) throw new Error(`${name}: ${JSON.stringify(r.errors)}`);
    fs.writeFileSync(path.join(out, `${name}.html`), r.html);
  }
  const inky = new Inky({});
  for (const [name, src] of Object.entries(inkyLetters)) {
    fs.writeFileSync(path.join(out, `${name}.html`), inky.releaseTheKraken(src));
  }
  console.log(`${Object.keys(mjmlLetters).length + Object.keys(inkyLetters).length} letters in ${out}`);
}
main().catch((e) => { console.error(e); process.exit(1); });
