"""moto's server, with the one CloudFormation resource type the tests need
that moto 5.2.5 does not create: AWS::CloudWatch::Alarm (moto skips it, so
a stack's alarms would not exist and ListStackResources would not name
them). A stack's alarm becomes an alarm of moto's own CloudWatch (the call
PutMetricAlarm makes), named as CloudFormation names it (AlarmName, else
<stack>-<logical id>-<suffix>); its physical id is that name, as in AWS:
https://docs.aws.amazon.com/AWSCloudFormation/latest/TemplateReference/aws-resource-cloudwatch-alarm.html
Single-metric alarms only (no Metrics list).
"""

import sys

from moto.cloudwatch.models import cloudwatch_backends
from moto.core.common_models import CloudFormationModel
from moto.server import main


class StackAlarm(CloudFormationModel):
    # moto files its models by the service its module names.
    __module__ = "moto.cloudwatch.stack_alarm"

    def __init__(self, name):
        self.name = name

    @staticmethod
    def cloudformation_type():
        return "AWS::CloudWatch::Alarm"

    @staticmethod
    def cloudformation_name_type():
        return "AlarmName"

    @property
    def physical_resource_id(self):
        return self.name

    @classmethod
    def create_from_cloudformation_json(
        cls, resource_name, cloudformation_json, account_id, region_name, **kwargs
    ):
        p = cloudformation_json["Properties"]
        cloudwatch_backends[account_id][region_name].put_metric_alarm(
            name=resource_name,
            namespace=p.get("Namespace"),
            metric_name=p.get("MetricName"),
            comparison_operator=p["ComparisonOperator"],
            evaluation_periods=int(p["EvaluationPeriods"]),
            period=int(p.get("Period", 60)),
            threshold=float(p.get("Threshold", 0)),
            statistic=p.get("Statistic"),
            description=p.get("AlarmDescription"),
            dimensions=p.get("Dimensions", []),
            alarm_actions=p.get("AlarmActions", []),
            ok_actions=p.get("OKActions", []),
        )
        return cls(resource_name)

    @classmethod
    def delete_from_cloudformation_json(
        cls, resource_name, cloudformation_json, account_id, region_name
    ):
        cloudwatch_backends[account_id][region_name].delete_alarms([resource_name])


if __name__ == "__main__":
    sys.exit(main())
