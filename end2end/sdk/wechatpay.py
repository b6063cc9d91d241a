"""PyPI `wechatpayv3` against ClinicPay's WeChat Pay sandbox (optional SDK check).

Registers a fresh merchant, then Native prepay -> pay (control API) -> query SUCCESS -> the
notification verified and decrypted by `WeChatPay.callback` -> refund -> refund query -> close ->
trade bill download with its SHA-1, with the SDK verifying every signed answer.

Usage: python3 end2end/sdk/wechatpay.py http://127.0.0.1:PORT   (needs `pip install wechatpayv3`)
"""

import hashlib
import gzip
import json
import os
import secrets
import sys
import time
import urllib.request

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from wechatpayv3 import WeChatPay, WeChatPayType


def check(cond, message):
    if not cond:
        raise AssertionError(message)


def http_json(method, url, body=None):
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data=data, method=method, headers={'content-type': 'application/json',
                                 'x-sandbox-token': os.environ.get('CLINICPAY_SANDBOX_TOKEN', '')})
    with urllib.request.urlopen(req, timeout=10) as resp:
        return json.loads(resp.read().decode())


def main(base):
    base = base.rstrip('/')
    sandbox = base + '/sandbox/wechatpay'
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    private_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                    serialization.NoEncryption()).decode()
    public_pem = key.public_key().public_bytes(serialization.Encoding.PEM,
                                               serialization.PublicFormat.SubjectPublicKeyInfo).decode()
    mchid = '18%08d' % (int(time.time() * 1000) % 100000000)
    appid = 'wx' + secrets.token_hex(8)
    serial = secrets.token_hex(20).upper()
    apiv3_key = secrets.token_hex(16)
    reg = http_json('POST', sandbox + '/merchants', {
        'mchid': mchid, 'appid': appid, 'merchant_serial_no': serial,
        'merchant_public_key': public_pem, 'apiv3_key': apiv3_key,
    })

    # public-key mode (no certificate download in __init__), then point the SDK at the sandbox
    wxpay = WeChatPay(wechatpay_type=WeChatPayType.NATIVE, mchid=mchid, private_key=private_pem,
                      cert_serial_no=serial, appid=appid, apiv3_key=apiv3_key,
                      notify_url=base + '/notify/wechatpay',
                      public_key=reg['platform_public_key'], public_key_id=reg['public_key_id'])
    wxpay._core._gate_way = sandbox

    out_trade_no = 'PY%d%s' % (int(time.time() * 1000), secrets.token_hex(2))
    code, text = wxpay.pay(description='ClinicPay SDK 测试', out_trade_no=out_trade_no,
                           amount={'total': 1234, 'currency': 'CNY'}, pay_type=WeChatPayType.NATIVE)
    check(code == 200, 'native: %s %s' % (code, text))
    check(json.loads(text)['code_url'].startswith(sandbox + '/pay/'), text)

    code, text = wxpay.query(out_trade_no=out_trade_no)
    check(code == 200 and json.loads(text)['trade_state'] == 'NOTPAY', 'query before paying: %s %s' % (code, text))

    http_json('POST', '%s/control/trades/%s/pay' % (sandbox, out_trade_no))
    code, text = wxpay.query(out_trade_no=out_trade_no)
    paid = json.loads(text)
    check(code == 200 and paid['trade_state'] == 'SUCCESS', 'query after paying: %s %s' % (code, text))

    n = http_json('GET', '%s/control/trades/%s/notification' % (sandbox, out_trade_no))
    result = wxpay.callback(n['headers'], n['body'])
    check(result and result['event_type'] == 'TRANSACTION.SUCCESS', 'callback: %r' % (result,))
    check(result['resource']['transaction_id'] == paid['transaction_id'], 'callback resource: %r' % (result,))

    out_refund_no = 'R' + out_trade_no
    code, text = wxpay.refund(out_refund_no=out_refund_no, amount={'refund': 234, 'total': 1234, 'currency': 'CNY'},
                              out_trade_no=out_trade_no, reason='退费')
    check(code == 200 and json.loads(text)['status'] in ('PROCESSING', 'SUCCESS'), 'refund: %s %s' % (code, text))
    status = None
    for _ in range(100):
        code, text = wxpay.query_refund(out_refund_no=out_refund_no)
        status = json.loads(text)['status']
        if status == 'SUCCESS':
            break
        time.sleep(0.05)
    check(status == 'SUCCESS', 'refund never succeeded: %s' % status)

    code, text = wxpay.refund(out_refund_no=out_refund_no + 'X', amount={'refund': 1001, 'total': 1234, 'currency': 'CNY'},
                              out_trade_no=out_trade_no)
    check(code == 400 and json.loads(text)['code'] == 'INVALID_REQUEST', 'over-refund: %s %s' % (code, text))

    other = out_trade_no + 'C'
    wxpay.pay(description='to close', out_trade_no=other, amount={'total': 1}, pay_type=WeChatPayType.NATIVE)
    code, text = wxpay.close(out_trade_no=other)
    check(code == 204, 'close: %s %s' % (code, text))

    bill_date = time.strftime('%Y-%m-%d', time.gmtime(time.time() + 8 * 3600))
    code, text = wxpay.trade_bill(bill_date=bill_date)  # tar_type GZIP by default
    check(code == 200, 'trade bill: %s %s' % (code, text))
    link = json.loads(text)
    code, content = wxpay.download_bill(link['download_url'])
    check(code == 200, 'bill download: %s' % code)
    plain = gzip.decompress(content)
    check(hashlib.sha1(plain).hexdigest() == link['hash_value'], 'bill hash')
    check(('`%s,' % out_trade_no).encode() in plain, 'the bill lists the trade')

    print('wechatpay python sdk ok: %s' % out_trade_no)


if __name__ == '__main__':
    if len(sys.argv) < 2:
        print('usage: python3 wechatpay.py BASE_URL', file=sys.stderr)
        sys.exit(2)
    try:
        main(sys.argv[1])
    except Exception as e:  # noqa: BLE001 - report and fail
        print('wechatpay python sdk FAILED: %r' % (e,), file=sys.stderr)
        sys.exit(1)
