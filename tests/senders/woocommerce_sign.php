<?php
// Signs a delivery as WooCommerce's WC_Webhook does: the payload is PHP's json_encode of the
// order (escaping "/" as "\/" and non-ASCII as "\uXXXX"), the key is the stored secret after
// wp_specialchars_decode($secret, ENT_QUOTES).
//
// Usage: php woocommerce_sign.php SECRET < order.json
// Prints the signature on the first line and the payload after it.

// WordPress's decode: only &amp; &lt; &gt; &quot; and the quote entities, once each, in their
// zero-padded decimal and hexadecimal spellings too.
function wp_specialchars_decode_quotes(string $text): string
{
    if (strpos($text, '&') === false) {
        return $text;
    }
    $text = preg_replace(
        ['/&#0*39;/', '/&#x0*27;/i', '/&#0*34;/', '/&#x0*22;/i', '/&#0*60;/', '/&#0*62;/',
         '/&#0*38;/', '/&#x0*26;/i'],
        ['&#039;', '&#x27;', '&#034;', '&#x22;', '&#060;', '&#062;', '&#038;', '&#x26;'],
        $text
    );
    return strtr($text, [
        '&#039;' => "'", '&#x27;' => "'", '&quot;' => '"', '&#034;' => '"', '&#x22;' => '"',
        '&lt;' => '<', '&#060;' => '<', '&gt;' => '>', '&#062;' => '>',
        '&amp;' => '&', '&#038;' => '&', '&#x26;' => '&',
    ]);
}

$secret = $argv[1];
$order = json_decode(stream_get_contents(STDIN), true, 512, JSON_THROW_ON_ERROR);
$payload = trim(json_encode($order));
$key = wp_specialchars_decode_quotes($secret);
echo base64_encode(hash_hmac('sha256', $payload, $key, true)), "\n", $payload;
