"""The words the process document uses for every state, step and role, in English and Chinese.

The Chinese names follow the original process (``移动应用内购买订单管理流程``): its status
names (已支付, 待发货, 已发货, 已完成, 已退款), its steps (订单生成, 支付确认, 退款申请, 审核流程,
退款执行, 用户反馈, 问题处理 ...) and its roles (产品经理, 开发团队, 客服团队, 数据分析师). A test
checks that every state of every machine, every step of the permission table and every role
has a name here in both languages, so a new one cannot be left unnamed.
"""

from __future__ import annotations

STATES: dict[str, dict[str, str]] = {
    "order.pending_payment": {"en": "waiting for payment", "zh": "待支付"},
    "order.paid": {"en": "paid", "zh": "已支付"},
    "order.awaiting_delivery": {"en": "waiting for delivery", "zh": "待发货"},
    "order.delivered": {"en": "delivered", "zh": "已发货"},
    "order.completed": {"en": "completed", "zh": "已完成"},
    "order.partially_refunded": {"en": "partially refunded", "zh": "部分退款"},
    "order.refunded": {"en": "refunded", "zh": "已退款"},
    "order.payment_failed": {"en": "payment failed", "zh": "支付失败"},
    "order.cancelled": {"en": "cancelled", "zh": "已取消"},
    "order.expired": {"en": "closed unpaid", "zh": "已超时关闭"},
    "refund.requested": {"en": "requested", "zh": "已申请"},
    "refund.in_review": {"en": "in review", "zh": "审核中"},
    "refund.approved": {"en": "approved", "zh": "审核通过"},
    "refund.submitted": {"en": "sent to the payment platform", "zh": "已提交支付平台"},
    "refund.refunded": {"en": "money returned", "zh": "已退款"},
    "refund.rejected": {"en": "rejected", "zh": "已驳回"},
    "refund.withdrawn": {"en": "withdrawn by the buyer", "zh": "已撤回"},
    "refund.failed": {"en": "payout failed", "zh": "退款失败"},
    "ticket.open": {"en": "waiting for an answer", "zh": "待处理"},
    "ticket.answered": {"en": "answered", "zh": "已答复"},
    "ticket.waiting_on_buyer": {
        "en": "waiting on the buyer (the clock stops)",
        "zh": "等待用户回复（暂停计时）",
    },
    "ticket.resolved": {"en": "resolved", "zh": "已解决"},
    "ticket.reopened": {"en": "reopened", "zh": "重新打开"},
    "subscription.active": {"en": "active", "zh": "生效中"},
    "subscription.in_grace_period": {
        "en": "in the grace period (still usable)",
        "zh": "宽限期",
    },
    "subscription.on_hold": {
        "en": "on hold (billing retry, no access)",
        "zh": "账户保留（重试扣款）",
    },
    "subscription.paused": {"en": "paused", "zh": "已暂停"},
    "subscription.cancelled": {"en": "auto-renew turned off", "zh": "已取消自动续订"},
    "subscription.expired": {"en": "expired", "zh": "已过期"},
    "subscription.revoked": {"en": "revoked", "zh": "已撤销"},
}
"""``machine.state`` -> its name for people."""

STEPS: dict[str, dict[str, str]] = {
    "product.create": {"en": "List a product", "zh": "产品展示"},
    "product.update": {"en": "Update a product", "zh": "更新产品信息"},
    "order.place": {"en": "Tap buy: the order is created", "zh": "订单生成"},
    "order.renew": {"en": "A subscription renews", "zh": "订阅续费"},
    "order.record": {"en": "Record a purchase the platform charged", "zh": "记录平台扣款"},
    "order.pay": {"en": "Pay", "zh": "支付确认"},
    "order.fail_payment": {"en": "Payment declined", "zh": "支付失败"},
    "order.cancel": {"en": "Cancel before paying", "zh": "取消订单"},
    "order.expire": {"en": "Close an unpaid order", "zh": "超时关闭订单"},
    "order.hold_delivery": {"en": "Hold the delivery", "zh": "暂缓发货"},
    "order.deliver": {"en": "Deliver the item", "zh": "发货"},
    "order.complete": {"en": "Confirm receipt", "zh": "确认完成"},
    "order.partial_refund": {
        "en": "Part of the payment went back",
        "zh": "订单部分退款",
    },
    "order.refund": {"en": "Mark the order refunded", "zh": "订单退款"},
    "order.escalate": {
        "en": "Paid but not delivered: tell the lead",
        "zh": "超时未发货，上报客服主管",
    },
    "refund.request": {"en": "Ask for a refund", "zh": "退款申请"},
    "refund.open_review": {"en": "Open the review task", "zh": "生成审核任务"},
    "refund.escalate": {"en": "Tell the lead", "zh": "上报客服主管"},
    "refund.approve": {"en": "Approve the refund", "zh": "审核通过"},
    "refund.reject": {"en": "Reject the refund, with a reason", "zh": "审核驳回"},
    "refund.withdraw": {"en": "Withdraw the request", "zh": "撤回退款申请"},
    "refund.submit": {"en": "Send the refund to the payment platform", "zh": "退款执行"},
    "refund.confirm": {"en": "The platform confirms the refund", "zh": "退款成功"},
    "refund.fail": {"en": "The platform refuses the refund", "zh": "退款失败"},
    "refund.platform_refund": {"en": "The platform refunded by itself", "zh": "平台直接退款"},
    "refund.platform_decline": {"en": "The platform declined", "zh": "平台拒绝退款"},
    "refund.answer_platform": {"en": "Answer the platform's review", "zh": "答复平台审核"},
    "refund.platform_reversal": {"en": "The platform reversed a refund", "zh": "平台撤销退款"},
    "ticket.submit": {"en": "Rate and comment", "zh": "用户反馈"},
    "ticket.answer": {"en": "Answer the buyer", "zh": "问题处理"},
    "ticket.resolve": {"en": "Mark the problem solved", "zh": "问题解决"},
    "ticket.reopen": {"en": "Reopen: the problem is back", "zh": "重新打开"},
    "ticket.ask_buyer": {
        "en": "Ask the buyer for details (the clock stops)",
        "zh": "请用户补充信息（暂停计时）",
    },
    "ticket.buyer_reply": {
        "en": "The buyer replies (the clock runs on)",
        "zh": "用户回复（恢复计时）",
    },
    "ticket.explain": {"en": "Say why the rating is low", "zh": "填写差评原因"},
    "ticket.escalate": {"en": "Tell the lead", "zh": "上报客服主管"},
    "subscription.start": {"en": "A paid order starts a subscription", "zh": "订阅开通"},
    "subscription.renew": {"en": "A paid renewal starts a new period", "zh": "续订成功"},
    "subscription.recover": {"en": "The store collects a failed renewal", "zh": "补扣成功"},
    "subscription.enter_grace": {
        "en": "A renewal fails: the grace period starts",
        "zh": "续订失败，进入宽限期",
    },
    "subscription.hold": {
        "en": "Put on hold: no access while billing retries",
        "zh": "转入账户保留",
    },
    "subscription.pause": {"en": "Pause the subscription", "zh": "暂停订阅"},
    "subscription.resume": {"en": "Resume after a pause", "zh": "恢复订阅"},
    "subscription.cancel": {"en": "Turn auto-renew off", "zh": "取消自动续订"},
    "subscription.uncancel": {"en": "Turn auto-renew back on", "zh": "恢复自动续订"},
    "subscription.expire": {"en": "End an unrenewed subscription", "zh": "订阅到期失效"},
    "subscription.revoke": {"en": "Revoke the subscription", "zh": "撤销订阅"},
    "subscription.change_plan": {"en": "Change the plan", "zh": "变更订阅方案"},
    "subscription.extend": {"en": "Extend the period (store's word)", "zh": "延长订阅周期"},
    "subscription.read": {"en": "Look up subscriptions", "zh": "订阅查询"},
    "entitlement.read": {"en": "Check what a buyer may use", "zh": "查询使用权益"},
    "order.read": {"en": "Look up orders", "zh": "订单查询"},
    "refund.read": {"en": "Look up refunds", "zh": "退款查询"},
    "ticket.read": {"en": "Read feedback", "zh": "查看用户反馈"},
    "audit.read": {"en": "Read the audit trail", "zh": "查看操作记录"},
    "report.read": {"en": "Analyse the data", "zh": "数据分析"},
    "sweep.run": {"en": "Act on due time limits", "zh": "处理到期时限"},
    "outbox.deliver": {"en": "Send notifications", "zh": "确认信息推送"},
    "operations.read": {
        "en": "Read the outbox backlog and open deadlines",
        "zh": "查看待发通知与未到期时限",
    },
    "event.remember": {"en": "Record a platform event once", "zh": "记录平台事件（去重）"},
    "order.acknowledge": {
        "en": "Acknowledge a delivered purchase to the platform",
        "zh": "向支付平台确认已发货的购买",
    },
    "reconcile.run": {
        "en": "Reconcile with the platforms' records",
        "zh": "与支付平台记录对账",
    },
}
"""Action -> the step's name for people."""

ROLES: dict[str, dict[str, str]] = {
    "buyer": {"en": "Buyer", "zh": "用户"},
    "product_manager": {"en": "Product manager", "zh": "产品经理"},
    "support_agent": {"en": "Support agent", "zh": "客服团队"},
    "support_lead": {"en": "Support lead", "zh": "客服主管"},
    "data_analyst": {"en": "Data analyst", "zh": "数据分析师"},
    "developer": {"en": "Developer", "zh": "开发团队"},
    "system": {"en": "System", "zh": "系统"},
}

MACHINES: dict[str, dict[str, str]] = {
    "order": {"en": "Order", "zh": "订单"},
    "refund": {"en": "Refund", "zh": "退款"},
    "ticket": {"en": "Feedback", "zh": "售后反馈"},
    "subscription": {"en": "Subscription", "zh": "订阅"},
}

TEXT: dict[str, dict[str, str]] = {
    "title": {
        "en": "The in-app purchase order process",
        "zh": "移动应用内购买订单管理流程",
    },
    "intro": {
        "en": "For every department: who does what, in what order, and by when. Generated by "
        "`iap-flow docs` from the rules the system enforces, so it is always current.",
        "zh": "供各部门使用：谁做什么、按什么顺序、在什么时间内完成。本文档由 `iap-flow docs` "
        "根据系统实际执行的规则生成，始终与系统一致。",
    },
    "steps": {"en": "The process, step by step", "zh": "详细步骤"},
    "swimlanes": {"en": "Who does what (swimlanes by role)", "zh": "泳道图（按角色）"},
    "limits": {"en": "Time limits", "zh": "时间节点"},
    "roles": {"en": "Roles and what they may do", "zh": "角色与职责"},
    "states": {"en": "Every status, named", "zh": "订单状态一览"},
    "who": {"en": "who", "zh": "负责人"},
    "step": {"en": "step", "zh": "步骤"},
    "then": {"en": "then", "zh": "结果"},
    "limit": {"en": "time limit", "zh": "时限"},
    "none": {"en": "-", "zh": "-"},
    "status": {"en": "status", "zh": "状态"},
    "machine": {"en": "record", "zh": "对象"},
    "name": {"en": "name", "zh": "名称"},
    "may": {"en": "may", "zh": "可执行的步骤"},
    "within": {"en": "within {window}", "zh": "{window}内"},
    "reminder": {"en": "a reminder at {at}", "zh": "{at}时提醒"},
    "else_lead": {"en": "else the lead is told", "zh": "否则通知客服主管"},
    "else_manager": {"en": "else the support manager is told", "zh": "否则通知客服经理"},
    "levels": {"en": "Feedback: targets by priority", "zh": "售后反馈：按优先级的时限"},
    "priority": {"en": "priority", "zh": "优先级"},
    "first_answer": {"en": "first answer within", "zh": "首次答复时限"},
    "solved": {"en": "solved within", "zh": "解决时限"},
    "hours_all": {
        "en": "Feedback targets count every hour of the day (no business-hours calendar is set).",
        "zh": "售后反馈时限按自然时间计算（未设置工作时间）。",
    },
    "hours": {
        "en": "Feedback targets count working hours only: {days}, {hours} ({tz}), "
        "not on the {n} listed holidays. Store and order time limits count every hour.",
        "zh": "售后反馈时限只计算工作时间：{days}，{hours}（{tz}），{n} 个节假日不计。"
        "商店与订单的时限按自然时间计算。",
    },
    "pause": {
        "en": "While support waits on the buyer's reply, the clock stops; it runs on with the "
        "time left when the buyer replies. A warning goes out when most of the time is used.",
        "zh": "等待用户回复期间暂停计时，用户回复后按剩余时间继续计时。时限即将用完时发出预警。",
    },
    "chain": {
        "en": "Escalation: {chain}; each level has {window} before the next is told.",
        "zh": "逐级上报：{chain}；每一级有 {window}处理时间，超时通知上一级。",
    },
    "bad_rating": {
        "en": "A rating of 2 or less asks the buyer why (slow delivery, payment problem, ...); "
        "support sees the reason with the feedback.",
        "zh": "评分为 2 分及以下时请用户选择原因（发货慢、支付问题等），客服可在反馈中看到原因。",
    },
    "else_expire": {"en": "else the order is closed", "zh": "否则订单自动关闭"},
    "else_retry": {"en": "else it is sent again", "zh": "否则系统自动重试"},
    "else_policy_answer": {
        "en": "else the system sends the policy answer",
        "zh": "否则系统按策略自动答复平台",
    },
    "else_acknowledge": {
        "en": "else the system acknowledges it (retried, the lead told before Google refunds)",
        "zh": "否则系统自动确认（失败重试，谷歌退款前通知客服主管）",
    },
    "else_sub_expire": {"en": "else the subscription expires", "zh": "否则订阅过期"},
    "else_hold": {
        "en": "else it goes on hold (no access)",
        "zh": "否则转入账户保留（暂停使用）",
    },
    "agent_limit": {
        "en": "A support agent approves refunds up to {limits}; above that, the lead decides.",
        "zh": "客服团队可批准不超过 {limits} 的退款；超过此金额由客服主管决定。",
    },
    "decide": {"en": "Approve or reject (with a reason)", "zh": "审核通过或驳回"},
    "catalogue": {"en": "the catalogue buyers see changes", "zh": "用户看到的商品信息随之更新"},
    "reference": {"en": "Reference for engineers", "zh": "技术参考（工程师）"},
}

LIMIT_WHAT: dict[str, dict[str, str]] = {
    "order_payment": {"en": "The buyer pays", "zh": "用户完成支付"},
    "refund_review": {"en": "Support decides a refund request", "zh": "客服审核退款申请"},
    "refund_retry": {
        "en": "An approved refund reaches the platform",
        "zh": "已批准的退款提交至支付平台",
    },
    "ticket_first_response": {"en": "Support answers new feedback", "zh": "客服首次答复用户反馈"},
    "ticket_resolution": {"en": "Support solves the buyer's problem", "zh": "客服解决用户问题"},
    "ticket_escalation": {
        "en": "The lead solves an escalated problem",
        "zh": "客服主管处理已上报的问题",
    },
    "order_delivery": {"en": "The paid item is delivered", "zh": "支付后完成发货"},
    "subscription_period_end": {
        "en": "The store renews a subscription after its period ends",
        "zh": "订阅周期结束后，商店完成续订",
    },
    "subscription_grace_end": {
        "en": "The store collects a failed renewal in the grace period",
        "zh": "宽限期内，商店补扣续订费用",
    },
    "subscription_hold_end": {
        "en": "The store collects a renewal while the subscription is on hold",
        "zh": "账户保留期间，商店补扣续订费用",
    },
    "review_answer": {
        "en": "The platform's refund review is answered before its window closes",
        "zh": "在平台期限前答复平台的退款审核",
    },
    "purchase_acknowledge": {
        "en": "A delivered purchase is acknowledged to the platform",
        "zh": "已发货的购买向支付平台确认",
    },
}
"""Deadline kind -> what must happen before it, in plain words."""

PRIORITIES: dict[str, dict[str, str]] = {
    "urgent": {"en": "urgent", "zh": "紧急"},
    "high": {"en": "high", "zh": "高"},
    "normal": {"en": "normal", "zh": "普通"},
    "low": {"en": "low", "zh": "低"},
}

RECIPIENTS: dict[str, dict[str, str]] = {
    "support_lead": {"en": "support lead", "zh": "客服主管"},
    "support_manager": {"en": "support manager", "zh": "客服经理"},
}
"""Who an escalation level tells."""

WEEKDAYS: dict[str, dict[str, str]] = {
    "mon": {"en": "Mon", "zh": "周一"},
    "tue": {"en": "Tue", "zh": "周二"},
    "wed": {"en": "Wed", "zh": "周三"},
    "thu": {"en": "Thu", "zh": "周四"},
    "fri": {"en": "Fri", "zh": "周五"},
    "sat": {"en": "Sat", "zh": "周六"},
    "sun": {"en": "Sun", "zh": "周日"},
}

PHASES: dict[str, dict[str, str]] = {
    "product": {"en": "1. Products", "zh": "1. 产品展示"},
    "order": {"en": "2. Buying and delivery", "zh": "2. 用户购买与订单管理"},
    "refund": {"en": "3. Refunds", "zh": "3. 退款处理"},
    "ticket": {"en": "4. After-sales feedback", "zh": "4. 售后服务"},
    "subscription": {"en": "5. Subscriptions", "zh": "5. 订阅管理"},
}


PUNCT: dict[str, dict[str, str]] = {
    "en": {"(": " (", ")": ")", ":": ": ", ".": ".", ",": ", ", ";": "; "},
    "zh": {"(": "（", ")": "）", ":": "：", ".": "。", ",": "、", ";": "；"},
}
"""Punctuation of each language."""


def word(table: dict[str, dict[str, str]], key: str, lang: str) -> str:
    """``table[key]`` in ``lang``; KeyError names what is missing."""
    try:
        return table[key][lang]
    except KeyError:
        raise KeyError(f"no {lang} name for {key!r}") from None
